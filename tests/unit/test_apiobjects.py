"""bootstrap.render.apiobjects: the fields that matter, what changes between minors, and schema
validity of every object for every minor we support (kubernetes-validate --strict)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubeadm_golden import CUSTOM_KUBE_PROXY, spec_for

from bootstrap.durations import go_duration
from bootstrap.join import copycerts, jws
from bootstrap.join.tokens import Token, parse_token
from bootstrap.render.apiobjects import (
    bootstraptoken,
    clusteradmins,
    coredns,
    joincommand,
    kubeproxy,
    markcontrolplane,
    phases,
    uploadcerts,
    uploadconfig,
)
from bootstrap.render.apiobjects.applymode import MUTATED_KEYS, ApplyMode, apply_mode
from bootstrap.render.apiobjects.common import minor
from bootstrap.spec.model import (
    Arg,
    ClusterSpec,
    Component,
    EnvVar,
    ExternalEtcd,
    Hardening,
    Networking,
    NodeRegistration,
    Taint,
)
from bootstrap.versions import KubeVersion

MINORS = range(27, 38)
NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = bytes(range(32))


def spec(version: str = "v1.37.2", **kw: Any) -> ClusterSpec:
    base: dict[str, Any] = {"advertise_address": "10.0.0.10", "node": NodeRegistration(name="cp1")}
    return ClusterSpec(kubernetes_version=version, **{**base, **kw})


def v(m: int) -> str:
    return f"v1.{m}.0"


def by_name(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


# ---- common -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(hours=8760), "8760h0m0s"), (timedelta(hours=87600), "87600h0m0s"), (timedelta(minutes=4), "4m0s"),
    (timedelta(seconds=90), "1m30s"), (timedelta(seconds=2.5), "2.5s"), (timedelta(milliseconds=300), "300ms"),
    (timedelta(0), "0s"), (timedelta(hours=1, seconds=1), "1h0m1s"),
])
def test_go_duration(delta: timedelta, text: str) -> None:
    assert go_duration(delta) == text


def test_minor_is_read_from_the_version_text() -> None:
    assert minor(spec("v1.37.2")) == 37 and minor(spec("1.27.3")) == 27
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        minor(spec("latest"))


# ---- upload-config ----------------------------------------------------------------------------------
def test_cluster_configuration_v1beta4_fields() -> None:
    cc = uploadconfig.cluster_configuration(spec())
    assert cc["apiVersion"] == "kubeadm.k8s.io/v1beta4" and cc["kind"] == "ClusterConfiguration"
    assert cc["networking"] == {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12"}  # no empty podSubnet
    assert "controlPlaneEndpoint" not in cc and "featureGates" not in cc
    assert cc["etcd"] == {"local": {"dataDir": "/var/lib/etcd"}}
    assert (cc["proxy"], cc["dns"], cc["apiServer"]) == ({}, {}, {})
    assert cc["certificateValidityPeriod"] == "8760h0m0s" and cc["encryptionAlgorithm"] == "RSA-2048"
    text = uploadconfig.kubeadm_config_objects(spec())[0]["data"]["ClusterConfiguration"]
    assert yaml.safe_load(text) == cc and text.startswith("apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\n")


def test_cluster_configuration_is_v1beta3_before_v1_31() -> None:
    s = spec("v1.30.4", api_server=spec().api_server.model_copy(update={
        "extra_args": (Arg(name="a", value="1"), Arg(name="a", value="2"))}),
        controller_manager=Component(extra_envs=(EnvVar(name="X", value="y"),)))
    cc = uploadconfig.cluster_configuration(s)
    assert cc["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert cc["apiServer"] == {"extraArgs": {"a": "2"}, "timeoutForControlPlane": "4m0s"}  # a map: last one wins
    assert cc["controllerManager"] == {}  # v1beta3 has no extraEnvs
    for field in ("proxy", "encryptionAlgorithm", "certificateValidityPeriod", "caCertificateValidityPeriod"):
        assert field not in cc
    assert uploadconfig.cluster_configuration(spec("v1.31.0"))["apiVersion"] == "kubeadm.k8s.io/v1beta4"


def test_cluster_configuration_external_etcd_and_no_hardening() -> None:
    s = spec(etcd_local=None, etcd_external=ExternalEtcd(endpoints=("https://e1:2379",), ca_file="/e/ca.crt"),
             hardening=Hardening())
    cc = uploadconfig.cluster_configuration(s)
    assert cc["etcd"] == {"external": {"endpoints": ["https://e1:2379"], "caFile": "/e/ca.crt", "certFile": "",
                                       "keyFile": ""}}
    assert "profiling" not in str(cc) and "audit" not in str(cc)  # our CIS flags are not kubeadm config


NODE_CONFIG = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
               "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
               "resolvConf": "/run/systemd/resolve/resolv.conf", "clusterDomain": "cluster.local"}


@pytest.mark.parametrize(("version", "keeps_resolv_conf"), [("v1.36.3", True), ("v1.37.2", False)])
def test_cluster_kubelet_configuration_drops_node_values(version: str, keeps_resolv_conf: bool) -> None:
    doc = uploadconfig.cluster_kubelet_configuration(spec(version), NODE_CONFIG)
    assert doc["containerRuntimeEndpoint"] == ""  # instance-config.yaml's, node-local
    assert ("resolvConf" in doc) is keeps_resolv_conf  # v1.36 leaked the init node's systemd-resolved path
    user = spec(version, kubelet_configuration={"resolvConf": "/etc/r.conf", "containerRuntimeEndpoint": "unix:///c"})
    doc = uploadconfig.cluster_kubelet_configuration(user, {**NODE_CONFIG, "resolvConf": "/etc/r.conf"})
    assert doc["resolvConf"] == "/etc/r.conf" and doc["containerRuntimeEndpoint"] == "unix:///c"


def test_kubelet_config_map_signed_only_when_generated() -> None:
    cm, role, binding = uploadconfig.kubelet_config_objects(spec(), NODE_CONFIG)
    digest = hashlib.sha256(cm["data"]["kubelet"].encode()).hexdigest()
    assert cm["metadata"]["annotations"] == {"kubeadm.kubernetes.io/component-config.hash": f"sha256:{digest}"}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubelet-config"],
                              "verbs": ["get"]}]
    assert [s["name"] for s in binding["subjects"]] == ["system:nodes", "system:bootstrappers:kubeadm:default-node-token"]
    cm, _, _ = uploadconfig.kubelet_config_objects(spec(kubelet_configuration={"maxPods": 9}), NODE_CONFIG)
    assert "annotations" not in cm["metadata"]


@pytest.mark.parametrize(("version", "gates", "annotates"), [
    ("v1.30.0", {}, True), ("v1.31.0", {"NodeLocalCRISocket": True}, True),  # no such gate before v1.32
    ("v1.33.0", {}, True), ("v1.33.0", {"NodeLocalCRISocket": True}, False),
    ("v1.34.0", {}, False), ("v1.35.0", {"NodeLocalCRISocket": False}, True),
    ("v1.36.3", {"NodeLocalCRISocket": False}, False), ("v1.37.2", {}, False),
])
def test_cri_socket_annotation(version: str, gates: dict[str, bool], annotates: bool) -> None:
    patch = uploadconfig.cri_socket_annotation_patch(spec(version, feature_gates=gates))
    if annotates:
        assert patch == {"metadata": {"annotations": {
            "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock"}}}
    else:
        assert patch is None


# ---- upload-certs -----------------------------------------------------------------------------------
def test_upload_certs_token_authenticates_nobody() -> None:
    secret = uploadcerts.upload_certs_token(Token("abc123", "0123456789abcdef"), NOW)
    data = {k: base64.b64decode(val).decode() for k, val in secret["data"].items()}
    assert data == {"token-id": "abc123", "token-secret": "0123456789abcdef", "expiration": "2026-12-01T12:00:00Z",
                    "description": "Proxy for managing TTL for the kubeadm-certs secret"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"


def test_kubeadm_certs_secret() -> None:
    token = Token("abc123", "0123456789abcdef")
    files = {"ca.crt": b"CA", "ca.key": None, "sa.pub": b""}
    secret, role, binding = uploadcerts.kubeadm_certs_objects(files, KEY, owner_token=token, owner_uid="u-1")
    assert secret["data"]["ca.key"] == "" and secret["data"]["sa.pub"] == ""  # missing on disk: stored empty
    assert copycerts.decrypt_secret(secret, KEY, {"/p/ca.crt": "ca.crt", "/p/ca.key": "ca.key"}) == {"/p/ca.crt": b"CA"}
    assert "type" not in secret  # the API server makes it Opaque
    assert secret["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Secret", "name": "bootstrap-token-abc123", "uid": "u-1", "controller": True,
        "blockOwnerDeletion": True}]
    assert role["rules"][0]["resourceNames"] == ["kubeadm-certs"] and role["rules"][0]["resources"] == ["secrets"]
    assert binding["subjects"] == [{"kind": "Group", "name": "system:bootstrappers:kubeadm:default-node-token"}]
    ext = spec(etcd_local=None, etcd_external=ExternalEtcd(endpoints=("https://e:2379",), ca_file="/x/ca.pem"))
    assert set(uploadcerts.files_to_upload(ext)) >= {"external-etcd-ca.crt"}
    assert "etcd-ca.key" not in uploadcerts.files_to_upload(ext)
    # etcd in host mode is external to kubeadm: its join reads external-etcd-*; kbootstrap's the etcd CA.
    host = uploadcerts.files_to_upload(spec(etcd_mode="host"))
    assert host["external-etcd-ca.crt"] == host["etcd-ca.crt"] == "/etc/kubernetes/pki/etcd/ca.crt"
    assert host["external-etcd.key"] == "/etc/kubernetes/pki/apiserver-etcd-client.key" and "etcd-ca.key" in host


# ---- mark-control-plane -----------------------------------------------------------------------------
FRESH_NODE = {"apiVersion": "v1", "kind": "Node",
              "metadata": {"name": "cp1", "labels": {"kubernetes.io/hostname": "cp1"}}, "spec": {}}


def test_mark_control_plane_patch_on_a_fresh_node() -> None:
    taints = markcontrolplane.control_plane_taints(spec())
    assert taints == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert markcontrolplane.mark_control_plane_patch(FRESH_NODE, taints) == {
        "metadata": {"labels": {"node-role.kubernetes.io/control-plane": "",
                                "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
        "spec": {"taints": taints},
    }
    assert FRESH_NODE["spec"] == {}  # not mutated


def test_mark_control_plane_keeps_other_taints_after_ours() -> None:
    other = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    node = {**FRESH_NODE, "spec": {"taints": [other]}}
    taints = markcontrolplane.control_plane_taints(spec())
    marked = markcontrolplane.mark_control_plane(node, taints)
    assert marked["spec"]["taints"] == [*taints, other]
    assert markcontrolplane.mark_control_plane_patch(marked, taints) == {}  # a second run changes nothing


def test_mark_control_plane_with_no_taints() -> None:
    s = spec(node=NodeRegistration(name="cp1", taints=()))
    assert markcontrolplane.control_plane_taints(s) == []
    patch = markcontrolplane.mark_control_plane_patch(FRESH_NODE, [])
    assert "spec" not in patch and len(markcontrolplane.mark_control_plane_messages(s)) == 1
    assert not markcontrolplane.node_ready_to_mark({"metadata": {"name": "cp1"}})


def test_taint_text() -> None:
    assert markcontrolplane.taint_text({"key": "a", "value": "b", "effect": "NoExecute"}) == "a=b:NoExecute"
    assert markcontrolplane.taint_text({"key": "a", "effect": "NoSchedule"}) == "a:NoSchedule"
    s = spec(node=NodeRegistration(name="cp1", taints=(Taint(key="a", value="b", effect="NoExecute"),)))
    assert markcontrolplane.control_plane_taints(s) == [{"key": "a", "value": "b", "effect": "NoExecute"}]


# ---- bootstrap-token --------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "has_kubelet_api_binding"), [("v1.35.4", False), ("v1.36.3", True)])
def test_apiserver_kubelet_client_binding_from_v1_36(version: str, has_kubelet_api_binding: bool) -> None:
    objs = by_name(bootstraptoken.node_bootstrap_rbac(spec(version)))
    assert (("ClusterRoleBinding", "kubeadm:apiserver-kubelet-client") in objs) is has_kubelet_api_binding
    assert objs[("ClusterRoleBinding", "kubeadm:kubelet-bootstrap")]["roleRef"]["name"] == "system:node-bootstrapper"
    assert objs[("ClusterRoleBinding", "kubeadm:node-autoapprove-certificate-rotation")]["subjects"] == [
        {"kind": "Group", "name": "system:nodes"}]


@pytest.mark.parametrize(("version", "preferences"), [("v1.33.0", True), ("v1.34.0", False)])
def test_cluster_info_kubeconfig(version: str, preferences: bool) -> None:
    s = spec(version, control_plane_endpoint="lb.example.test")
    text = bootstraptoken.cluster_info_kubeconfig(s, CA_PEM)
    doc = yaml.safe_load(text)
    assert doc["clusters"] == [{"name": "", "cluster": {"server": "https://lb.example.test:6443",
                                                        "certificate-authority-data": base64.b64encode(CA_PEM).decode()}}]
    assert ("preferences" in doc) is preferences and '  name: ""\n' in text
    assert doc["contexts"] is None and doc["users"] is None and doc["current-context"] == ""


def test_cluster_info_signed_like_the_bootstrap_signer() -> None:
    kubeconfig = bootstraptoken.cluster_info_kubeconfig(spec(), CA_PEM)
    cm = bootstraptoken.cluster_info_configmap(kubeconfig, {"abcdef": "0123456789abcdef"})
    assert cm["metadata"] == {"name": "cluster-info", "namespace": "kube-public"}
    assert jws.detached_token_is_valid(cm["data"]["jws-kubeconfig-abcdef"], kubeconfig, "abcdef", "0123456789abcdef")
    role, binding = bootstraptoken.cluster_info_rbac()
    assert binding["subjects"] == [{"kind": "User", "name": "system:anonymous"}]
    assert role["metadata"]["namespace"] == "kube-public" and role["rules"][0]["resourceNames"] == ["cluster-info"]


def test_token_secrets_from_the_spec() -> None:
    s = spec_for("v1.37.2", "custom")
    first, second = bootstraptoken.token_secrets(bootstraptoken.spec_tokens(s), NOW)
    assert base64.b64decode(first["data"]["expiration"]).decode() == "2026-12-01T12:00:00Z"
    assert "expiration" not in second["data"]  # ttl 0: never expires
    default = bootstraptoken.default_init_token(parse_token("abcdef.0123456789abcdef"), from_config_file=False)
    data = {k: base64.b64decode(val).decode() for k, val in default.secret(NOW)["data"].items()}
    assert data["description"] == "The default bootstrap token generated by 'kubeadm init'."
    assert data["expiration"] == "2026-12-02T10:00:00Z" and data["usage-bootstrap-signing"] == "true"
    assert bootstraptoken.default_init_token(default.token, from_config_file=True).description == ""


# ---- CoreDNS ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", MINORS)
def test_coredns_per_minor(m: int) -> None:
    objs = by_name(coredns.coredns_objects(spec(v(m))))
    rules = objs[("ClusterRole", "system:coredns")]["rules"]
    assert any("nodes" in r["resources"] for r in rules) is (m <= 27)
    container = objs[("Deployment", "coredns")]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"]["drop"] == (["ALL"] if m >= 29 else ["all"])
    assert container["livenessProbe"]["httpGet"]["port"] == ("liveness-probe" if m >= 34 else 8080)
    assert ("readiness-probe" in {p["name"] for p in container["ports"]}) is (m >= 34)
    assert container["image"] == f"registry.k8s.io/coredns/coredns:{KubeVersion.parse(v(m)).coredns_version}"
    assert ("disable success cluster.local" in objs[("ConfigMap", "coredns")]["data"]["Corefile"]) is (m >= 32)


def test_coredns_image_service_ip_and_replicas() -> None:
    s = spec(image_repository="mirror.example.test/k8s",
             networking=Networking(service_subnet="10.100.0.0/16,fd00::/108", dns_domain="corp.internal"))
    objs = by_name(coredns.coredns_objects(s, replicas=3))
    deployment = objs[("Deployment", "coredns")]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror.example.test/k8s/coredns:v1.14.6"
    assert objs[("Service", "kube-dns")]["spec"]["clusterIP"] == "10.100.0.10"  # the first subnet's tenth address
    assert "kubernetes corp.internal in-addr.arpa ip6.arpa {" in objs[("ConfigMap", "coredns")]["data"]["Corefile"]
    tolerations = deployment["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in tolerations


# ---- kube-proxy -------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", MINORS)
def test_kube_proxy_configuration_fields_per_minor(m: int) -> None:
    cfg, warnings = kubeproxy.kube_proxy_configuration(spec(v(m), networking=Networking(pod_subnet="10.244.0.0/16")))
    assert warnings == []
    assert ("logging" in cfg) is (m >= 28)
    assert ("nftables" in cfg) is (m >= 29) and ("tcpBeLiberal" in cfg["conntrack"]) is (m >= 29)
    assert cfg["mode"] == ("iptables" if m >= 37 else "")
    assert cfg["bindAddress"] == "0.0.0.0" and cfg["clusterCIDR"] == "10.244.0.0/16"
    assert cfg["clientConnection"]["kubeconfig"] == "/var/lib/kube-proxy/kubeconfig.conf"


def test_kube_proxy_user_configuration() -> None:
    s = spec(advertise_address="fd00::10", networking=Networking(pod_subnet="fd00:1::/56"))
    cfg, warnings = kubeproxy.kube_proxy_configuration(s, CUSTOM_KUBE_PROXY)
    assert cfg["mode"] == "nftables" and cfg["bindAddress"] == "::" and warnings == []
    cfg, warnings = kubeproxy.kube_proxy_configuration(s, {"bindAddress": "10.0.0.1", "clusterCIDR": "10.1.0.0/16",
                                                           "mode": "ipvs"})
    assert cfg["bindAddress"] == "10.0.0.1" and cfg["clusterCIDR"] == "10.1.0.0/16"
    assert warnings[0] == ('The recommended value for "bindAddress" in "KubeProxyConfiguration" is: 0.0.0.0; '
                           'the provided value is: 10.0.0.1')
    assert "clusterCIDR" in warnings[1] and "deprecated since version v1.35" in warnings[2]
    # v1.35: the advertise address's family decides, a wildcard of the other family is warned about.
    _, warnings = kubeproxy.kube_proxy_configuration(spec("v1.35.0", advertise_address="fd00::10"),
                                                     {"bindAddress": "0.0.0.0"})
    assert warnings == ['The recommended value for "bindAddress" in "KubeProxyConfiguration" is: ::; '
                        'the provided value is: 0.0.0.0']
    cm = kubeproxy.kube_proxy_configmap(s, CUSTOM_KUBE_PROXY)
    assert "annotations" not in cm["metadata"]  # user-supplied: kubeadm leaves it unsigned


def test_kube_proxy_configmap_and_daemonset() -> None:
    s = spec(control_plane_endpoint="lb.example.test:7443",
             proxy_env=(EnvVar(name="no_proxy", value="10.0.0.0/8"), EnvVar(name="HTTPS_PROXY", value="http://p:3128")))
    cm = kubeproxy.kube_proxy_configmap(s)
    assert not cm["data"]["config.conf"].endswith("\n") and not cm["data"]["kubeconfig.conf"].endswith("\n")
    kubeconfig = yaml.safe_load(cm["data"]["kubeconfig.conf"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://lb.example.test:7443"
    digest = hashlib.sha256((cm["data"]["config.conf"] + cm["data"]["kubeconfig.conf"]).encode()).hexdigest()
    assert cm["metadata"]["annotations"]["kubeadm.kubernetes.io/component-config.hash"] == f"sha256:{digest}"
    pod = kubeproxy.kube_proxy_daemonset(s)["spec"]["template"]["spec"]
    assert [e["name"] for e in pod["containers"][0]["env"]] == ["NODE_NAME", "HTTPS_PROXY", "no_proxy"]
    assert pod["containers"][0]["image"] == "registry.k8s.io/kube-proxy:v1.37.2"
    assert pod["hostNetwork"] is True and pod["priorityClassName"] == "system-node-critical"
    assert pod["containers"][0]["securityContext"] == {"privileged": True}
    assert {vol["name"] for vol in pod["volumes"]} == {"kube-proxy", "xtables-lock", "lib-modules"}


# ---- show-join-command ------------------------------------------------------------------------------
HASH = "sha256:" + "ab" * 32


def test_join_commands() -> None:
    worker = joincommand.join_command("10.0.0.10:6443", "abcdef.0123456789abcdef", [HASH])
    assert worker == f"kubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash {HASH} "
    cp = joincommand.join_command("[fd00::1]:6443", "abcdef.0123456789abcdef", [HASH], control_plane=True,
                                  certificate_key="ff" * 32)
    assert cp.endswith(f"{HASH} \\\n\t--control-plane --certificate-key {'ff' * 32}")
    assert joincommand.one_line(cp) == (f"kubeadm join [fd00::1]:6443 --token abcdef.0123456789abcdef "
                                        f"--discovery-token-ca-cert-hash {HASH} --control-plane --certificate-key "
                                        f"{'ff' * 32}")
    hidden = joincommand.join_command("h:1", "t", [HASH], control_plane=True, certificate_key="k",
                                      skip_token_print=True, skip_certificate_key_print=True)
    assert "--token <value withheld>" in hidden and "--certificate-key <value withheld>" in hidden
    assert joincommand.join_command("h:1", "a&b", []) == "kubeadm join h:1 --token a&amp;b \\\n\t"  # html/template


def test_init_done_message_variants() -> None:
    common = {"endpoint": "lb:6443", "tokens": ["abcdef.0123456789abcdef"], "ca_cert_hashes": [HASH]}
    copy_certs = joincommand.show_join_command(control_plane_endpoint=True, upload_certs=False, **common)
    assert "by copying certificate authorities\nand service account keys" in copy_certs
    assert "--control-plane \n" in copy_certs  # no key: kubeadm's template leaves the space
    no_cpe = joincommand.show_join_command(control_plane_endpoint=False, upload_certs=True, **common)
    assert "control-plane nodes" not in no_cpe and no_cpe.endswith(" \n")
    assert "sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config" in no_cpe


# ---- phases, apply modes, cluster-admins ------------------------------------------------------------
@pytest.mark.parametrize("m", MINORS)
def test_phase_list_per_minor(m: int) -> None:
    top = phases.init_phases(m)
    names = [p.name for p in top]
    assert names[-8:] == ["wait-control-plane", "upload-config", "upload-certs", "mark-control-plane",
                          "bootstrap-token", "kubelet-finalize", "addon", "show-join-command"]
    assert (names.index("kubelet-start") < names.index("control-plane")) is (m <= 27)
    assert all(p.needs_api_server for p in phases.api_phases(m))
    assert not any(p.needs_api_server for p in top[:6])
    wait = top[names.index("wait-control-plane")]
    assert wait.hidden is (m <= 33) and bool(wait.help) is (m >= 30)
    finalize = [c.name for c in top[names.index("kubelet-finalize")].children]
    if m <= 30:
        assert finalize == ["all", "experimental-cert-rotation"]
    elif m == 31:
        assert finalize == ["all", "enable-client-cert-rotation", "experimental-cert-rotation"]
    else:
        assert finalize == ["all", "enable-client-cert-rotation"]


def test_apply_modes() -> None:
    s = spec()
    assert apply_mode(uploadconfig.kubeadm_config_objects(s)[0]) == ApplyMode.CREATE_OR_MUTATE
    assert MUTATED_KEYS[("ConfigMap", "kube-system", "kubeadm-config")] == ("data", "ClusterConfiguration")
    assert apply_mode(coredns.coredns_configmap(s)) == ApplyMode.CREATE_OR_RETAIN
    assert apply_mode(coredns.dns_service(s)) == ApplyMode.CREATE_OR_UPDATE
    assert apply_mode(kubeproxy.kube_proxy_configmap(s)) == ApplyMode.CREATE_OR_UPDATE


def test_cluster_admins_binding_from_v1_29() -> None:
    assert clusteradmins.cluster_admins_objects(spec("v1.28.0")) == []
    (crb,) = clusteradmins.cluster_admins_objects(spec("v1.29.0"))
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    assert crb["subjects"] == [{"kind": "Group", "name": "kubeadm:cluster-admins"}]


# ---- schema validity --------------------------------------------------------------------------------
def every_object(s: ClusterSpec) -> list[dict[str, Any]]:
    tokens = bootstraptoken.spec_tokens(s)
    token = Token("abc123", "0123456789abcdef")
    return [
        *uploadconfig.upload_config_objects(s, NODE_CONFIG),
        uploadcerts.upload_certs_token(token, NOW),
        *uploadcerts.kubeadm_certs_objects({"ca.crt": b"x", "ca.key": None}, KEY, owner_token=token, owner_uid="u"),
        *bootstraptoken.bootstrap_token_objects(s, tokens, CA_PEM, NOW),
        *coredns.coredns_objects(s),
        *kubeproxy.kube_proxy_objects(s),
        *clusteradmins.cluster_admins_objects(s),
    ]


@pytest.mark.parametrize("m", MINORS)
def test_every_object_passes_kubernetes_validate_strict(m: int) -> None:
    s = spec_for(v(m), "custom")
    objs = every_object(s)
    assert len(objs) >= 25
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, f"1.{m}.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} (v1.{m}): {exc.message}")


def test_node_patches_are_valid_node_fragments() -> None:
    node = markcontrolplane.mark_control_plane(FRESH_NODE, markcontrolplane.control_plane_taints(spec()))
    kubernetes_validate.validate(node, "1.37.0", strict=True)
    patch = uploadconfig.cri_socket_annotation_patch(spec("v1.30.0"))
    assert patch is not None
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp1", **patch["metadata"]}},
                                 "1.30.0", strict=True)


def test_kubernetes_validate_cli_strict(tmp_path: Path) -> None:
    """The same check through the command line, as CI and a reader would run it."""
    if shutil.which("kubernetes-validate") is None:
        pytest.skip("kubernetes-validate not installed")
    objs = every_object(spec_for("v1.37.2", "custom"))
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(objs))
    proc = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.37.0", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" passed for resource ") == len(objs), proc.stdout
