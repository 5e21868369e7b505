"""The certificate catalog: names, order, subjects per version, SAN rules."""

from __future__ import annotations

from typing import Any

from bootstrap.pki import catalog
from bootstrap.pki.catalog import AltNames, Subject
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec, ExternalEtcd


def make_spec(**flags: Any) -> ClusterSpec:
    base = {"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1", "kubernetes_version": "v1.31.2"}
    return build_spec({**base, **flags})


def test_order_and_help_match_kubeadm() -> None:
    assert [c.name for c in catalog.ALL_CERTS] == [
        "ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client",
        "etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client",
    ]
    assert catalog.APISERVER.help == "Generate the certificate for serving the Kubernetes API"
    assert catalog.CA.help == (
        "Generate the self-signed Kubernetes CA to provision identities for other Kubernetes components"
    )
    assert catalog.ETCD_PEER.help == "Generate the certificate for etcd nodes to communicate with each other"
    assert catalog.SA_HELP.startswith("Generate a private key for signing service account tokens")
    assert [c.base for c in catalog.ALL_CERTS if c.base.startswith("etcd/")] == [
        "etcd/ca", "etcd/server", "etcd/peer", "etcd/healthcheck-client",
    ]


def test_apiserver_sans_sorted_dns_and_ordered_ips() -> None:
    spec = make_spec(control_plane_endpoint="lb.example.com:6443",
                     apiserver_cert_extra_sans="zz.example.com,10.0.0.5,192.168.1.9,cp1,a.example.com")
    alt = catalog.APISERVER.alt_names(spec)
    assert alt.dns == (
        "a.example.com", "cp1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "lb.example.com", "zz.example.com",
    )
    assert alt.ips == ("10.96.0.1", "10.0.0.5", "192.168.1.9")


def test_apiserver_cpe_ip_goes_to_ips_and_custom_domain_and_service_cidr() -> None:
    spec = make_spec(control_plane_endpoint="10.0.0.100", service_dns_domain="corp.local", service_cidr="10.200.0.0/16")
    alt = catalog.APISERVER.alt_names(spec)
    assert "kubernetes.default.svc.corp.local" in alt.dns
    assert alt.ips == ("10.200.0.1", "10.0.0.5", "10.0.0.100")


def test_etcd_sans_include_extra_sans_from_config(tmp_path: Any) -> None:
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.0\n"
        "etcd:\n  local:\n    serverCertSANs: [etcd.example.com, 10.1.1.1]\n    peerCertSANs: [peer.example.com]\n"
    )
    spec = build_spec({"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1"}, str(cfg))
    server = catalog.ETCD_SERVER.alt_names(spec)
    assert server.dns == ("cp1", "etcd.example.com", "localhost")
    assert server.ips == ("10.0.0.5", "127.0.0.1", "::1", "10.1.1.1")
    peer = catalog.ETCD_PEER.alt_names(spec)
    assert peer.dns == ("cp1", "localhost", "peer.example.com")
    assert peer.ips == ("10.0.0.5", "127.0.0.1", "::1")


def test_ca_san_is_its_cn_and_clients_have_none() -> None:
    spec = make_spec()
    assert catalog.CA.alt_names(spec) == AltNames(("kubernetes",), ())
    assert catalog.ETCD_CA.alt_names(spec).dns == ("etcd-ca",)
    assert not catalog.APISERVER_ETCD_CLIENT.alt_names(spec)


def test_subjects_are_version_aware() -> None:
    old, new = make_spec(kubernetes_version="v1.28.4"), make_spec(kubernetes_version="v1.29.0")
    assert catalog.APISERVER_KUBELET_CLIENT.subject(old) == Subject("kube-apiserver-kubelet-client", ("system:masters",))
    assert catalog.APISERVER_KUBELET_CLIENT.subject(new) == Subject(
        "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",))
    assert catalog.APISERVER_ETCD_CLIENT.subject(old).orgs == ("system:masters",)
    assert catalog.APISERVER_ETCD_CLIENT.subject(new).orgs == ()
    assert catalog.ETCD_HEALTHCHECK_CLIENT.subject(old).orgs == ("system:masters",)
    assert catalog.ETCD_HEALTHCHECK_CLIENT.subject(new) == Subject("kube-etcd-healthcheck-client")
    assert catalog.ETCD_SERVER.subject(new) == Subject("cp1")
    assert catalog.ETCD_PEER.subject(new) == Subject("cp1")


def test_usages() -> None:
    assert catalog.APISERVER.usages == ("serverAuth",)
    assert catalog.ETCD_SERVER.usages == ("serverAuth", "clientAuth")
    assert catalog.ETCD_PEER.usages == ("serverAuth", "clientAuth")
    for c in (catalog.APISERVER_KUBELET_CLIENT, catalog.FRONT_PROXY_CLIENT, catalog.ETCD_HEALTHCHECK_CLIENT,
              catalog.APISERVER_ETCD_CLIENT):
        assert c.usages == ("clientAuth",)


def test_external_etcd_needs_no_etcd_certs() -> None:
    spec = make_spec().model_copy(update={"etcd_local": None, "etcd_external": ExternalEtcd(endpoints=("https://e:2379",))})
    assert [c.name for c in catalog.certs_for(spec)] == [
        "ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client",
    ]


def test_alt_names_diff() -> None:
    want = AltNames.build(["a", "b"], ["10.0.0.1"])
    have = AltNames.build(["a"], ["10.0.0.2"])
    assert want.diff(have) == "+DNS:b +IP:10.0.0.1 -IP:10.0.0.2"
    assert want.diff(want) == ""
    assert AltNames.build(["b", "a", "a"], ["::1", "0:0::1", "10.0.0.1"]) == AltNames(("a", "b"), ("::1", "10.0.0.1"))
