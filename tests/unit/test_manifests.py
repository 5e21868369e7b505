"""Static Pod manifests: exact commands, probes, volumes, serialization (kubeadm.md section 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.render import etcd as etcdr
from bootstrap.render import manifests as m
from bootstrap.render import podspec
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import Arg, ClusterSpec, ExternalEtcd, Hardening, HostPathMount, LocalEtcd

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PKI = "/etc/kubernetes/pki"


def make_spec(version: str = "v1.34.0", *, hardening: str = "kubeadm", adv: str = "10.0.0.5",
              pod_cidr: str | None = None, **update: Any) -> ClusterSpec:
    flags: dict[str, Any] = {"apiserver_advertise_address": adv, "node_name": "cp1",
                             "kubernetes_version": version, "hardening": hardening}
    if pod_cidr:
        flags["pod_network_cidr"] = pod_cidr
    spec = build_spec(flags)
    return spec.model_copy(update=update) if update else spec


def no_paths(_p: str) -> bool:
    return False


APISERVER_KUBEADM = [
    "kube-apiserver",
    "--advertise-address=10.0.0.5",
    "--allow-privileged=true",
    "--authorization-mode=Node,RBAC",
    f"--client-ca-file={PKI}/ca.crt",
    "--enable-admission-plugins=NodeRestriction",
    "--enable-bootstrap-token-auth=true",
    f"--etcd-cafile={PKI}/etcd/ca.crt",
    f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
    f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
    "--etcd-servers=https://127.0.0.1:2379",
    f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
    f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
    f"--proxy-client-key-file={PKI}/front-proxy-client.key",
    "--requestheader-allowed-names=front-proxy-client",
    f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    "--requestheader-group-headers=X-Remote-Group",
    "--requestheader-username-headers=X-Remote-User",
    "--secure-port=6443",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    f"--service-account-key-file={PKI}/sa.pub",
    f"--service-account-signing-key-file={PKI}/sa.key",
    "--service-cluster-ip-range=10.96.0.0/12",
    f"--tls-cert-file={PKI}/apiserver.crt",
    f"--tls-private-key-file={PKI}/apiserver.key",
]

AUDIT_FLAGS = [
    "--audit-log-maxage=30",
    "--audit-log-maxbackup=10",
    "--audit-log-maxsize=100",
    "--audit-log-path=/var/log/kubernetes/audit/audit.log",
    "--audit-policy-file=/etc/kubernetes/audit-policy.yaml",
]

KCM_KUBEADM = [
    "kube-controller-manager",
    "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
    "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
    "--bind-address=127.0.0.1",
    f"--client-ca-file={PKI}/ca.crt",
    "--cluster-name=kubernetes",
    f"--cluster-signing-cert-file={PKI}/ca.crt",
    f"--cluster-signing-key-file={PKI}/ca.key",
    "--controllers=*,bootstrapsigner,tokencleaner",
    "--kubeconfig=/etc/kubernetes/controller-manager.conf",
    "--leader-elect=true",
    f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
    f"--root-ca-file={PKI}/ca.crt",
    f"--service-account-private-key-file={PKI}/sa.key",
    "--use-service-account-credentials=true",
]

SCHEDULER_KUBEADM = [
    "kube-scheduler",
    "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
    "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
    "--bind-address=127.0.0.1",
    "--kubeconfig=/etc/kubernetes/scheduler.conf",
    "--leader-elect=true",
]

ETCD_35 = [
    "etcd",
    "--advertise-client-urls=https://10.0.0.5:2379",
    f"--cert-file={PKI}/etcd/server.crt",
    "--client-cert-auth=true",
    "--data-dir=/var/lib/etcd",
    "--experimental-initial-corrupt-check=true",
    "--experimental-watch-progress-notify-interval=5s",
    "--initial-advertise-peer-urls=https://10.0.0.5:2380",
    "--initial-cluster=cp1=https://10.0.0.5:2380",
    f"--key-file={PKI}/etcd/server.key",
    "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379",
    "--listen-metrics-urls=http://127.0.0.1:2381",
    "--listen-peer-urls=https://10.0.0.5:2380",
    "--name=cp1",
    f"--peer-cert-file={PKI}/etcd/peer.crt",
    "--peer-client-cert-auth=true",
    f"--peer-key-file={PKI}/etcd/peer.key",
    f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
    "--snapshot-count=10000",
    f"--trusted-ca-file={PKI}/etcd/ca.crt",
]


def container(pod: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = pod["spec"]["containers"][0]
    return c


# ---- commands ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1.34.0", "v1.30.2"])
def test_apiserver_command_kubeadm_profile(version: str) -> None:
    assert m.apiserver_command(make_spec(version)) == APISERVER_KUBEADM


def test_apiserver_command_cis_profile_adds_profiling_and_audit() -> None:
    cmd = m.apiserver_command(make_spec(hardening="cis"))
    expected = sorted(APISERVER_KUBEADM[1:] + AUDIT_FLAGS + ["--profiling=false"])
    assert cmd == ["kube-apiserver", *expected]


def test_extra_args_override_defaults_and_hardening() -> None:
    spec = make_spec(hardening="cis")
    spec = spec.model_copy(update={"api_server": spec.api_server.model_copy(update={"extra_args": (
        Arg(name="profiling", value="true"),
        Arg(name="audit-log-maxage", value="7"),
        Arg(name="enable-admission-plugins", value="NodeRestriction,PodSecurity"),
        Arg(name="tls-cipher-suites", value="b"),
        Arg(name="tls-cipher-suites", value="a"),
    )})})
    cmd = m.apiserver_command(spec)
    assert "--profiling=true" in cmd and "--profiling=false" not in cmd
    assert "--audit-log-maxage=7" in cmd and "--audit-log-maxage=30" not in cmd
    assert "--enable-admission-plugins=NodeRestriction,PodSecurity" in cmd
    # Same-name extraArgs are all kept, sorted by value.
    assert cmd.index("--tls-cipher-suites=a") + 1 == cmd.index("--tls-cipher-suites=b")
    assert cmd[1:] == sorted(cmd[1:])


def test_authorization_config_drops_authorization_mode() -> None:
    spec = make_spec()
    spec = spec.model_copy(update={"api_server": spec.api_server.model_copy(update={
        "extra_args": (Arg(name="authorization-config", value="/etc/kubernetes/authz.yaml"),)})})
    cmd = m.apiserver_command(spec)
    assert not any(a.startswith("--authorization-mode=") for a in cmd)
    assert "--authorization-config=/etc/kubernetes/authz.yaml" in cmd


def test_ipv6_apiserver_and_etcd() -> None:
    spec = make_spec(adv="fd00::5")
    api = m.apiserver_pod(spec, no_paths, environ={})
    assert "--etcd-servers=https://[::1]:2379" in container(api)["command"]
    assert api["metadata"]["annotations"] == {
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "[fd00::5]:6443"}
    assert container(api)["livenessProbe"]["httpGet"]["host"] == "fd00::5"
    etcd = etcdr.etcd_pod(spec)
    cmd = container(etcd)["command"]
    assert "--listen-client-urls=https://[::1]:2379,https://[fd00::5]:2379" in cmd
    assert "--listen-metrics-urls=http://[::1]:2381" in cmd
    assert "--initial-cluster=cp1=https://[fd00::5]:2380" in cmd
    assert container(etcd)["livenessProbe"]["httpGet"]["host"] == "::1"
    assert etcd["metadata"]["annotations"] == {
        "kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://[fd00::5]:2379"}


def test_external_etcd() -> None:
    ext = ExternalEtcd(endpoints=("https://10.1.0.1:2379", "https://10.1.0.2:2379"),
                       ca_file="/etc/etcd/pki/ca.crt", cert_file="/etc/etcd/pki/client.crt",
                       key_file="/srv/keys/client.key")
    spec = make_spec(etcd_external=ext, etcd_local=None)
    pod = m.apiserver_pod(spec, no_paths, environ={})
    cmd = container(pod)["command"]
    assert "--etcd-servers=https://10.1.0.1:2379,https://10.1.0.2:2379" in cmd
    assert "--etcd-cafile=/etc/etcd/pki/ca.crt" in cmd
    assert "--etcd-certfile=/etc/etcd/pki/client.crt" in cmd
    assert "--etcd-keyfile=/srv/keys/client.key" in cmd
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["etcd-certs-0"] == {"hostPath": {"path": "/etc/etcd/pki", "type": "DirectoryOrCreate"},
                                    "name": "etcd-certs-0"}
    assert vols["etcd-certs-1"]["hostPath"]["path"] == "/srv/keys"
    mounts = {v["name"]: v for v in container(pod)["volumeMounts"]}
    assert mounts["etcd-certs-0"] == {"mountPath": "/etc/etcd/pki", "name": "etcd-certs-0", "readOnly": True}


def test_external_etcd_certs_under_pki_get_no_extra_mount() -> None:
    ext = ExternalEtcd(endpoints=("https://e:2379",), ca_file=f"{PKI}/etcd/ca.crt",
                       cert_file=f"{PKI}/c.crt", key_file=f"{PKI}/c.key")
    pod = m.apiserver_pod(make_spec(etcd_external=ext, etcd_local=None), no_paths, environ={})
    assert not any(v["name"].startswith("etcd-certs") for v in pod["spec"]["volumes"])


def test_local_etcd_advertise_client_urls_extra_arg_feeds_etcd_servers() -> None:
    spec = make_spec(etcd_local=LocalEtcd(extra_args=(Arg(name="advertise-client-urls", value="https://e:2379"),)))
    assert "--etcd-servers=https://e:2379" in m.apiserver_command(spec)


@pytest.mark.parametrize("version", ["v1.34.0", "v1.30.2"])
def test_controller_manager_without_pod_subnet(version: str) -> None:
    assert m.controller_manager_command(make_spec(version)) == KCM_KUBEADM


def test_controller_manager_with_pod_subnet_and_hardening() -> None:
    cmd = m.controller_manager_command(make_spec(pod_cidr="10.244.0.0/16", hardening="cis"))
    expected = sorted([*KCM_KUBEADM[1:], "--allocate-node-cidrs=true", "--cluster-cidr=10.244.0.0/16", "--service-cluster-ip-range=10.96.0.0/12", "--profiling=false"])
    assert cmd == ["kube-controller-manager", *expected]


def test_controller_manager_external_ca() -> None:
    cmd = m.controller_manager_command(make_spec(), external_ca=True)
    assert "--cluster-signing-cert-file=" in cmd and "--cluster-signing-key-file=" in cmd
    text = m.pod_yaml(make_spec(), m.controller_manager_pod(make_spec(), no_paths, external_ca=True, environ={}))
    assert b"- --cluster-signing-cert-file=\n" in text


@pytest.mark.parametrize("hardening,extra", [("kubeadm", []), ("cis", ["--profiling=false"])])
def test_scheduler_command(hardening: str, extra: list[str]) -> None:
    cmd = m.scheduler_command(make_spec(hardening=hardening))
    assert cmd == ["kube-scheduler", *sorted(SCHEDULER_KUBEADM[1:] + extra)]


def test_etcd_command_35_and_36() -> None:
    assert etcdr.etcd_command(make_spec("v1.30.2")) == ETCD_35
    assert etcdr.etcd_command(make_spec("v1.33.1")) == ETCD_35
    cmd36 = etcdr.etcd_command(make_spec("v1.34.0"))
    expected = [a for a in ETCD_35 if "experimental" not in a]
    expected += ["--feature-gates=InitialCorruptCheck=true", "--watch-progress-notify-interval=5s"]
    assert cmd36 == ["etcd", *sorted(expected[1:])]
    # Decided by the etcd image tag, not the Kubernetes version.
    pinned = make_spec("v1.34.0", etcd_local=LocalEtcd(image_tag="3.5.21-0"))
    assert etcdr.etcd_command(pinned) == ETCD_35
    assert container(etcdr.etcd_pod(pinned))["image"] == "registry.k8s.io/etcd:3.5.21-0"


def test_etcd_join_initial_cluster() -> None:
    cmd = etcdr.etcd_command(make_spec(), initial_cluster=[("cp0", "https://10.0.0.4:2380"),
                                                       ("cp1", "https://10.0.0.5:2380")])
    assert "--initial-cluster=cp0=https://10.0.0.4:2380,cp1=https://10.0.0.5:2380" in cmd
    assert "--initial-cluster-state=existing" in cmd


# ---- probes, ports, resources -----------------------------------------------------------------------


def test_probes_v134_use_named_port() -> None:
    spec = make_spec("v1.34.0")
    api = container(m.apiserver_pod(spec, no_paths, environ={}))
    assert api["ports"] == [{"containerPort": 6443, "name": "probe-port", "protocol": "TCP"}]
    assert api["livenessProbe"] == {"failureThreshold": 8, "httpGet": {"host": "10.0.0.5", "path": "/livez",
                                    "port": "probe-port", "scheme": "HTTPS"}, "initialDelaySeconds": 10,
                                    "periodSeconds": 10, "timeoutSeconds": 15}
    assert api["readinessProbe"] == {"failureThreshold": 3, "httpGet": {"host": "10.0.0.5", "path": "/readyz",
                                     "port": "probe-port", "scheme": "HTTPS"}, "periodSeconds": 1,
                                     "timeoutSeconds": 15}
    assert api["startupProbe"]["failureThreshold"] == 24
    kcm = container(m.controller_manager_pod(spec, no_paths, environ={}))
    assert kcm["ports"] == [{"containerPort": 10257, "name": "probe-port", "protocol": "TCP"}]
    assert "readinessProbe" not in kcm
    assert kcm["livenessProbe"]["httpGet"] == {"host": "127.0.0.1", "path": "/healthz", "port": "probe-port",
                                               "scheme": "HTTPS"}
    sched = container(m.scheduler_pod(spec, environ={}))
    assert sched["ports"][0]["containerPort"] == 10259
    assert [sched[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")] == \
        ["/livez", "/readyz", "/livez"]
    etcd = container(etcdr.etcd_pod(spec))
    assert etcd["ports"] == [{"containerPort": 2381, "name": "probe-port", "protocol": "TCP"}]
    assert [etcd[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")] == \
        ["/livez", "/readyz", "/readyz"]
    assert etcd["livenessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_probes_v130_numeric_ports_and_old_paths() -> None:
    spec = make_spec("v1.30.2")
    api = container(m.apiserver_pod(spec, no_paths, environ={}))
    assert "ports" not in api and api["livenessProbe"]["httpGet"]["port"] == 6443
    sched = container(m.scheduler_pod(spec, environ={}))
    assert "readinessProbe" not in sched
    assert sched["livenessProbe"]["httpGet"] == {"host": "127.0.0.1", "path": "/healthz", "port": 10259,
                                                 "scheme": "HTTPS"}
    etcd = container(etcdr.etcd_pod(spec))
    assert "readinessProbe" not in etcd
    assert etcd["livenessProbe"]["httpGet"]["path"] == "/health?exclude=NOSPACE&serializable=true"
    assert etcd["startupProbe"]["httpGet"]["path"] == "/health?serializable=false"
    assert etcd["livenessProbe"]["httpGet"]["port"] == 2381


def test_etcd_probes_v131_and_scheduler_v131() -> None:
    spec = make_spec("v1.31.0")
    etcd = container(etcdr.etcd_pod(spec))
    assert etcd["readinessProbe"]["httpGet"] == {"host": "127.0.0.1", "path": "/readyz", "port": 2381,
                                                 "scheme": "HTTP"}
    assert container(m.scheduler_pod(spec, environ={}))["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container(m.scheduler_pod(make_spec("v1.32.0"), environ={}))["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_probe_hosts_follow_bind_address_and_metrics_url() -> None:
    spec = make_spec(adv="10.0.0.5")
    spec = spec.model_copy(update={
        "controller_manager": spec.controller_manager.model_copy(
            update={"extra_args": (Arg(name="bind-address", value="0.0.0.0"),)}),
        "scheduler": spec.scheduler.model_copy(update={"extra_args": (Arg(name="bind-address", value="10.0.0.5"),)}),
        "etcd_local": LocalEtcd(extra_args=(Arg(name="listen-metrics-urls", value="https://10.0.0.5:2382,http://x"),)),
    })
    kcm = container(m.controller_manager_pod(spec, no_paths, environ={}))
    assert "host" not in kcm["livenessProbe"]["httpGet"]  # 0.0.0.0: kubelet probes the pod IP
    assert container(m.scheduler_pod(spec, environ={}))["livenessProbe"]["httpGet"]["host"] == "10.0.0.5"
    etcd = container(etcdr.etcd_pod(spec))
    assert etcd["ports"][0]["containerPort"] == 2382
    assert etcd["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert etcd["livenessProbe"]["httpGet"]["host"] == "10.0.0.5"


def test_resources_and_pod_shape() -> None:
    spec = make_spec()
    pods = {
        "kube-apiserver": m.apiserver_pod(spec, no_paths, environ={}),
        "kube-controller-manager": m.controller_manager_pod(spec, no_paths, environ={}),
        "kube-scheduler": m.scheduler_pod(spec, environ={}),
        "etcd": etcdr.etcd_pod(spec),
    }
    cpu = {"kube-apiserver": "250m", "kube-controller-manager": "200m", "kube-scheduler": "100m", "etcd": "100m"}
    for name, pod in pods.items():
        assert pod["metadata"]["labels"] == {"component": name, "tier": "control-plane"}
        assert pod["metadata"]["namespace"] == "kube-system"
        assert pod["spec"]["priority"] == 2000001000
        assert pod["spec"]["priorityClassName"] == "system-node-critical"
        assert pod["spec"]["hostNetwork"] is True
        assert pod["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
        assert container(pod)["imagePullPolicy"] == "IfNotPresent"
        assert container(pod)["resources"]["requests"]["cpu"] == cpu[name]
        if name != "etcd":
            assert container(pod)["image"] == f"registry.k8s.io/{name}:v1.34.0"
    assert container(pods["etcd"])["resources"]["requests"]["memory"] == "100Mi"
    assert container(pods["etcd"])["image"] == "registry.k8s.io/etcd:3.6.4-0"


# ---- volumes --------------------------------------------------------------------------------------


def test_apiserver_volumes_sorted_with_types_and_only_if_exist_ca_dirs() -> None:
    present = {"/etc/pki/tls/certs", "/usr/share/ca-certificates"}
    pod = m.apiserver_pod(make_spec(hardening="cis"), present.__contains__, environ={})
    vols = pod["spec"]["volumes"]
    assert [v["name"] for v in vols] == ["audit-log", "audit-policy", "ca-certs", "etc-pki-tls-certs",
                                         "k8s-certs", "usr-share-ca-certificates"]
    by = {v["name"]: v["hostPath"] for v in vols}
    assert by["audit-policy"] == {"path": "/etc/kubernetes/audit-policy.yaml", "type": "File"}
    assert by["audit-log"] == {"path": "/var/log/kubernetes/audit", "type": "DirectoryOrCreate"}
    assert by["k8s-certs"] == {"path": PKI, "type": "DirectoryOrCreate"}
    mounts = {v["name"]: v for v in container(pod)["volumeMounts"]}
    assert "readOnly" not in mounts["audit-log"]
    assert mounts["audit-policy"]["readOnly"] is True
    assert all(mounts[n]["readOnly"] for n in ("ca-certs", "etc-pki-tls-certs", "k8s-certs"))
    assert [v["name"] for v in container(pod)["volumeMounts"]] == [v["name"] for v in vols]


def test_controller_manager_and_scheduler_volumes() -> None:
    spec = make_spec()
    kcm = m.controller_manager_pod(spec, {"/etc/ca-certificates"}.__contains__, environ={})
    assert [v["name"] for v in kcm["spec"]["volumes"]] == ["ca-certs", "etc-ca-certificates", "flexvolume-dir",
                                                           "k8s-certs", "kubeconfig"]
    mounts = {v["name"]: v for v in container(kcm)["volumeMounts"]}
    assert mounts["flexvolume-dir"] == {"mountPath": m.FLEXVOLUME_DIR, "name": "flexvolume-dir"}
    assert {v["name"]: v["hostPath"] for v in kcm["spec"]["volumes"]}["kubeconfig"] == {
        "path": "/etc/kubernetes/controller-manager.conf", "type": "FileOrCreate"}
    sched = m.scheduler_pod(spec, environ={})
    assert sched["spec"]["volumes"] == [{"hostPath": {"path": "/etc/kubernetes/scheduler.conf",
                                                      "type": "FileOrCreate"}, "name": "kubeconfig"}]


def test_extra_volumes_replace_same_name_and_keep_empty_type() -> None:
    spec = make_spec()
    spec = spec.model_copy(update={"api_server": spec.api_server.model_copy(update={"extra_volumes": (
        HostPathMount(name="ca-certs", host_path="/etc/my-certs", mount_path="/etc/ssl/certs", read_only=True),
        HostPathMount(name="aaa", host_path="/srv/a", mount_path="/a"),
    )})})
    pod = m.apiserver_pod(spec, no_paths, environ={})
    vols = {v["name"]: v["hostPath"] for v in pod["spec"]["volumes"]}
    assert vols["ca-certs"] == {"path": "/etc/my-certs", "type": ""}
    assert pod["spec"]["volumes"][0]["name"] == "aaa"
    assert b'type: ""' in m.pod_yaml(spec, pod)


def test_etcd_volumes_and_mount_order() -> None:
    pod = etcdr.etcd_pod(make_spec())
    assert pod["spec"]["volumes"] == [
        {"hostPath": {"path": f"{PKI}/etcd", "type": "DirectoryOrCreate"}, "name": "etcd-certs"},
        {"hostPath": {"path": "/var/lib/etcd", "type": "DirectoryOrCreate"}, "name": "etcd-data"},
    ]
    # kubeadm lists etcd mounts literally (data first), both read-write.
    assert container(pod)["volumeMounts"] == [{"mountPath": "/var/lib/etcd", "name": "etcd-data"},
                                              {"mountPath": f"{PKI}/etcd", "name": "etcd-certs"}]


# ---- env ------------------------------------------------------------------------------------------


def test_proxy_env_merged_with_extra_envs_sorted() -> None:
    from bootstrap.spec.model import EnvVar

    spec = make_spec()
    spec = spec.model_copy(update={"api_server": spec.api_server.model_copy(update={"extra_envs": (
        EnvVar(name="NO_PROXY", value="10.0.0.0/8"), EnvVar(name="GODEBUG", value="x=1"))})})
    env = {"HTTPS_PROXY": "http://p:3128", "no_proxy": "localhost", "HOME": "/root", "ftp_proxy": ""}
    pod = m.apiserver_pod(spec, no_paths, environ=env)
    assert container(pod)["env"] == [
        {"name": "GODEBUG", "value": "x=1"},
        {"name": "HTTPS_PROXY", "value": "http://p:3128"},
        {"name": "NO_PROXY", "value": "10.0.0.0/8"},
        {"name": "no_proxy", "value": "localhost"},
    ]
    assert "env" not in container(m.scheduler_pod(spec, environ={}))
    assert "env" not in container(etcdr.etcd_pod(spec))  # etcd gets no proxy variables


# ---- serialization ---------------------------------------------------------------------------------


def test_golden_kube_apiserver_v134_kubeadm_profile() -> None:
    spec = make_spec("v1.34.0", hardening="kubeadm")
    got = m.control_plane_manifests(spec, {"/etc/ca-certificates"}.__contains__, environ={})["kube-apiserver"]
    assert got == (GOLDEN / "kube-apiserver-v1.34-kubeadm.yaml").read_bytes()


def test_yaml_key_order_creation_timestamp_and_status() -> None:
    old = m.pod_yaml(make_spec("v1.30.2"), m.scheduler_pod(make_spec("v1.30.2"), environ={})).decode()
    assert old.startswith("apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n")
    assert old.endswith("status: {}\n")
    new = m.pod_yaml(make_spec("v1.34.0"), m.scheduler_pod(make_spec("v1.34.0"), environ={})).decode()
    assert "creationTimestamp" not in new and new.endswith("status: {}\n")
    body = new.split("  containers:\n", 1)[1].split("\n  hostNetwork:", 1)[0]
    keys = [ln.strip("- ").split(":")[0] for ln in body.splitlines()
            if (ln.startswith("    ") and ln[4] != " " and ln[4] != "-") or ln.startswith("  - ")]
    assert keys == ["command", "image", "imagePullPolicy", "livenessProbe", "name", "ports", "readinessProbe",
                    "resources", "startupProbe", "volumeMounts"]
    assert yaml.safe_load(new)["spec"]["containers"][0]["name"] == "kube-scheduler"


def test_go_style_quoting() -> None:
    text = podspec.to_yaml({"a": "0", "b": "", "c": "true", "d": "plain", "e": "*,x", "f": "10.0.0.5:6443"},
                     creation_timestamp=False)
    assert text == b'a: "0"\nb: ""\nc: "true"\nd: plain\ne: \'*,x\'\nf: 10.0.0.5:6443\n'


def test_etcd_systemd_unit_has_exactly_the_manifest_flags() -> None:
    spec = make_spec(etcd_mode="host")
    unit = etcdr.etcd_systemd_unit(spec)
    exec_lines = unit.split("ExecStart=", 1)[1].split("\nRestart=")[0]
    flags = [part.strip().rstrip("\\").strip() for part in exec_lines.splitlines()]
    assert flags[0] == "/usr/bin/etcd"
    assert flags[1:] == container(etcdr.etcd_pod(spec))["command"][1:]
    assert "Restart=always" in unit and "Type=notify" in unit


def test_hardening_kubeadm_classmethod_is_the_kubeadm_profile() -> None:
    assert make_spec(hardening="kubeadm").hardening == Hardening.kubeadm()
