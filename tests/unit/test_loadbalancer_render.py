"""Endpoint modes from inventory vars, and the HAProxy / keepalived / kube-vip configs they render.

Rendered configs are checked by the real tools on this host (`haproxy -c`, `keepalived -t`) and the
kube-vip manifest by `kubernetes-validate --strict`; each skips with the reason when the tool is
missing (`apt-get install haproxy keepalived`, `pip install kubernetes-validate`). Neither check
starts a daemon.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bootstrap.engine.context import RunContext
from bootstrap.engine.result import Status
from bootstrap.errors import ConfigError
from bootstrap.phases.loadbalancer import run_loadbalancer
from bootstrap.pki.catalog import apiserver_alt_names
from bootstrap.render import loadbalancer as lb
from bootstrap.spec.endpoint import (
    EndpointMode,
    VipProvider,
    control_plane_endpoint_for,
    endpoint_from_vars,
    endpoint_sans,
    node_api_server,
)
from bootstrap.spec.load import build_spec
from bootstrap.transport.local import LocalTarget

CPS = [SimpleNamespace(name=f"cp{i}", ip=f"10.0.0.{10 + i}") for i in (1, 2, 3)]
VIP = "10.0.0.250"

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (apt-get install haproxy)")
needs_keepalived = pytest.mark.skipif(shutil.which("keepalived") is None,
                                      reason="keepalived not installed (apt-get install keepalived)")


def vip_ep(**extra: object):  # type: ignore[no-untyped-def]
    ep = endpoint_from_vars({"kbootstrap_vip": VIP, **extra}, CPS)
    assert ep is not None
    return ep


def local_ep():  # type: ignore[no-untyped-def]
    ep = endpoint_from_vars({"kbootstrap_api_endpoint_mode": "localhost"}, CPS)
    assert ep is not None
    return ep


# ---- modes from inventory vars ------------------------------------------------------------------
def test_vip_mode_defaults() -> None:
    ep = vip_ep()
    assert (ep.mode, ep.provider, ep.address, ep.port) == (EndpointMode.VIP, VipProvider.KEEPALIVED, VIP, 8443)
    assert [b.address for b in ep.backends] == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    assert all(b.port == 6443 for b in ep.backends)
    assert 1 <= ep.router_id <= 255 and ep.router_id == vip_ep().router_id


def test_kubespray_external_lb_and_localhost_default() -> None:
    ext = endpoint_from_vars({"loadbalancer_apiserver": {"address": "10.1.1.1", "port": 8383}}, CPS)
    assert ext is not None and (ext.mode, ext.address, ext.port) == (EndpointMode.EXTERNAL, "10.1.1.1", 8383)
    named = endpoint_from_vars({"loadbalancer_apiserver": {"address": "10.1.1.1"},
                                "apiserver_loadbalancer_domain_name": "lb.example.com"}, CPS)
    assert named is not None and (named.address, named.port) == ("lb.example.com", 6443)
    # Kubespray: no external LB and several control planes -> the localhost LB on every node.
    loc = endpoint_from_vars({"loadbalancer_apiserver_port": 7443}, CPS)
    assert loc is not None and (loc.mode, loc.port) == (EndpointMode.LOCALHOST, 7443)
    assert endpoint_from_vars({"loadbalancer_apiserver_localhost": False}, CPS) is None
    assert endpoint_from_vars({}, CPS[:1]) is None
    assert endpoint_from_vars({}, CPS, kubespray_localhost_default=False) is None


def test_kubespray_kube_vip_vars() -> None:
    ep = endpoint_from_vars({"kube_vip_enabled": True, "kube_vip_controlplane_enabled": True,
                             "kube_vip_address": VIP, "kube_vip_interface": "ens3",
                             "loadbalancer_apiserver": {"address": VIP, "port": 6443}}, CPS)
    assert ep is not None
    assert (ep.mode, ep.provider, ep.address, ep.port, ep.interface) == (
        EndpointMode.VIP, VipProvider.KUBE_VIP, VIP, 6443, "ens3")


@pytest.mark.parametrize(("values", "message"), [
    ({"kbootstrap_api_endpoint_mode": "dns"}, "kbootstrap_api_endpoint_mode: 'dns' is not a mode"),
    ({"kbootstrap_api_endpoint_mode": "vip"}, "vip mode needs the virtual IP"),
    ({"kbootstrap_vip": "not-an-ip"}, "'not-an-ip' is not an IP address"),
    ({"kbootstrap_vip": "10.0.0.12"}, "10.0.0.12 is the address of cp2"),
    ({"kbootstrap_vip": VIP, "kbootstrap_vip_port": 6443}, "port 6443 is the API server's own port"),
    ({"kbootstrap_vip": VIP, "kbootstrap_vip_provider": "ucarp"}, "'ucarp' is not a provider"),
    ({"kbootstrap_vip": VIP, "kbootstrap_vrrp_router_id": 300}, "300 is not in 1..255"),
    ({"kbootstrap_api_endpoint_mode": "external"}, "external mode needs the load balancer's address"),
    ({"loadbalancer_apiserver": {"port": 1}}, "needs an address"),
    ({"loadbalancer_apiserver_type": "envoy"}, "'envoy' is not supported"),
])
def test_bad_endpoint_vars_are_one_line_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        endpoint_from_vars(values, CPS, "hosts.yaml")
    assert message in exc.value.one_line() and "\n" not in exc.value.one_line()
    assert exc.value.one_line().startswith("hosts.yaml: ")


def test_sans_and_control_plane_endpoint() -> None:
    ep = vip_ep()
    assert endpoint_sans(ep) == [VIP]
    assert control_plane_endpoint_for(ep, CPS) == f"{VIP}:8443"
    assert endpoint_sans(local_ep()) == ["localhost", "127.0.0.1"]
    # localhost mode: the cluster endpoint stays the first control plane; only workers use their proxy.
    assert control_plane_endpoint_for(local_ep(), CPS) == "10.0.0.11:6443"
    assert node_api_server(local_ep(), False, "https://10.0.0.11:6443") == "https://localhost:6443"
    assert node_api_server(local_ep(), True, "https://10.0.0.11:6443") == "https://10.0.0.11:6443"
    assert control_plane_endpoint_for(None, CPS) == "10.0.0.11:6443" and endpoint_sans(None) == []


def test_vip_ends_up_in_the_apiserver_cert_sans() -> None:
    ep = vip_ep()
    spec = build_spec({"apiserver_advertise_address": "10.0.0.11", "node_name": "cp1",
                       "control_plane_endpoint": control_plane_endpoint_for(ep, CPS),
                       "apiserver_cert_extra_sans": ",".join(endpoint_sans(ep) + endpoint_sans(local_ep()))}, None)
    names = apiserver_alt_names(spec)
    assert VIP in names.ips and "127.0.0.1" in names.ips and "localhost" in names.dns


# ---- HAProxy -----------------------------------------------------------------------------------
def test_haproxy_control_plane_and_worker_configs() -> None:
    cp = lb.haproxy_cfg(vip_ep(), "control-plane")
    assert "    bind *:8443\n" in cp
    w = lb.haproxy_cfg(local_ep(), "worker")
    assert "    bind 127.0.0.1:6443\n" in w and "bind *" not in w
    for text in (cp, w):
        assert "option httpchk GET /readyz" in text and "http-check expect status 200" in text
        servers = [ln.split() for ln in text.splitlines() if ln.strip().startswith("server ")]
        assert [s[1:3] for s in servers] == [["cp1", "10.0.0.11:6443"], ["cp2", "10.0.0.12:6443"],
                                             ["cp3", "10.0.0.13:6443"]]
        assert all(s[3:] == ["check", "check-ssl", "verify", "none"] for s in servers)
        assert f"stats socket {lb.HAPROXY_STATS_SOCKET}" in text
    with pytest.raises(ValueError):
        lb.haproxy_cfg(local_ep(), "control-plane")
    with pytest.raises(ValueError):
        lb.haproxy_cfg(vip_ep(), "worker")


@needs_haproxy
@pytest.mark.parametrize("role", ["control-plane", "worker"])
def test_haproxy_accepts_the_rendered_config(role: str, tmp_path: Path) -> None:
    ep = vip_ep() if role == "control-plane" else local_ep()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(lb.haproxy_cfg(ep, role))
    proc = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    # And it is not a rubber stamp: a broken config is refused.
    cfg.write_text(lb.haproxy_cfg(ep, role).replace("balance roundrobin", "balance nonsense"))
    assert subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, timeout=30).returncode != 0


# ---- keepalived ---------------------------------------------------------------------------------
def _keepalived_blocks(text: str) -> dict[str, str]:
    lines = [ln.strip() for ln in text.splitlines()]
    return {ln.split()[0]: " ".join(ln.split()[1:]) for ln in lines if ln and not ln.startswith("#")}


def test_keepalived_priorities_peers_and_check() -> None:
    ep = vip_ep()
    confs = {cp.ip: lb.keepalived_conf(ep, cp.ip, cp.name, "eth0") for cp in CPS}
    prios = [int(_keepalived_blocks(c)["priority"]) for c in confs.values()]
    assert prios == [200, 199, 198] and len(set(prios)) == 3
    for ip, text in confs.items():
        kv = _keepalived_blocks(text)
        assert kv["unicast_src_ip"] == ip
        peers = text.split("unicast_peer {")[1].split("}")[0].split()
        assert sorted(peers) == sorted(c.ip for c in CPS if c.ip != ip)
        assert f"{VIP}/32 dev eth0" in text
        assert kv["virtual_router_id"] == str(ep.router_id) and kv["advert_int"] == "1"
        assert kv["state"] == "BACKUP" and "nopreempt" in text
        assert f'script "{lb.CHECK_SCRIPT}"' in text and "chk_apiserver" in text.split("track_script {")[1]
    script = lb.check_script(ep)
    assert script.startswith("#!/bin/sh") and "https://127.0.0.1:8443/readyz" in script
    with pytest.raises(ValueError):
        lb.keepalived_conf(ep, "10.9.9.9", "stranger", "eth0")


def _host_nic() -> str:
    """keepalived -t wants a real, non-loopback interface of this host."""
    nics = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    if not nics:
        pytest.skip("this host has no network interface but lo")
    return "eth0" if "eth0" in nics else nics[0]


@needs_keepalived
def test_keepalived_accepts_the_rendered_config(tmp_path: Path) -> None:
    ep = vip_ep()
    nic = _host_nic()
    script = tmp_path / "check_apiserver.sh"
    script.write_text(lb.check_script(ep))
    script.chmod(0o755)
    tmp_path.chmod(0o755)
    for cp in CPS:
        conf = tmp_path / f"keepalived-{cp.name}.conf"
        conf.write_text(lb.keepalived_conf(ep, cp.ip, cp.name, nic, check_script_path=str(script)))
        proc = subprocess.run(["keepalived", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text(lb.keepalived_conf(ep, CPS[0].ip, "cp1", nic, check_script_path=str(script))
                   .replace("advert_int 1", "advert_int banana"))
    assert subprocess.run(["keepalived", "-t", "-f", str(bad)], capture_output=True, timeout=30).returncode != 0


# ---- kube-vip -----------------------------------------------------------------------------------
def test_kube_vip_manifest(tmp_path: Path) -> None:
    ep = vip_ep(kbootstrap_vip_provider="kube-vip", kbootstrap_vip_port=6443)
    pod = yaml.safe_load(lb.kube_vip_manifest(ep, "eth0", "/etc/kubernetes/super-admin.conf"))
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["address"] == VIP and env["vip_interface"] == "eth0" and env["port"] == "6443"
    assert env["cp_enable"] == env["vip_arp"] == env["vip_leaderelection"] == "true"
    assert pod["spec"]["hostNetwork"] is True
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/super-admin.conf"
    assert set(c["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    if shutil.which("kubernetes-validate") is None:
        pytest.skip("kubernetes-validate not installed")
    path = tmp_path / "kube-vip.yaml"
    path.write_text(lb.kube_vip_manifest(ep, "eth0"))
    proc = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.34.0", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the phase under --rootfs and dry-run -------------------------------------------------------
def _ctx(root: Path, roles: set[str], ip: str = "10.0.0.11", *, dry_run: bool = False) -> RunContext:
    spec = build_spec({"apiserver_advertise_address": ip, "node_name": "cp1"}, None)
    return RunContext(spec, LocalTarget(root), dry_run=dry_run, roles=frozenset(roles))


def test_phase_writes_by_role_under_rootfs_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    cp = _ctx(tmp_path / "cp", {"kube_control_plane", "etcd"})
    run_loadbalancer(cp, vip_ep())
    assert (tmp_path / "cp/etc/haproxy/haproxy.cfg").read_text() == lb.haproxy_cfg(vip_ep(), "control-plane")
    assert "unicast_src_ip 10.0.0.11" in (tmp_path / "cp/etc/keepalived/keepalived.conf").read_text()
    assert (tmp_path / "cp/etc/keepalived/check_apiserver.sh").stat().st_mode & 0o777 == 0o755
    skipped = [c.item for c in cp.phase.changes if c.status == Status.SKIPPED]
    assert "start haproxy" in skipped and "start keepalived" in skipped
    # Second run: nothing changes.
    again = _ctx(tmp_path / "cp", {"kube_control_plane", "etcd"})
    run_loadbalancer(again, vip_ep())
    assert not [c for c in again.phase.changes if c.status.changed]

    w = _ctx(tmp_path / "w", {"kube_node"}, "10.0.0.21")
    run_loadbalancer(w, local_ep())
    assert "bind 127.0.0.1:6443" in (tmp_path / "w/etc/haproxy/haproxy.cfg").read_text()
    assert not (tmp_path / "w/etc/keepalived").exists()
    wv = _ctx(tmp_path / "wv", {"kube_node"}, "10.0.0.21")
    run_loadbalancer(wv, vip_ep())
    assert not (tmp_path / "wv").exists() and wv.phase.changes[0].status == Status.SKIPPED

    dry = _ctx(tmp_path / "dry", {"kube_control_plane"}, dry_run=True)
    run_loadbalancer(dry, vip_ep())
    assert not (tmp_path / "dry").exists()
    assert {c.item for c in dry.phase.changes if c.status.changed} >= {lb.HAPROXY_CONFIG, lb.KEEPALIVED_CONFIG}


def test_phase_kube_vip_writes_the_static_pod(tmp_path: Path) -> None:
    ep = vip_ep(kbootstrap_vip_provider="kube-vip", kbootstrap_vip_port=6443, kbootstrap_vip_interface="ens3")
    ctx = _ctx(tmp_path, {"kube_control_plane"})
    run_loadbalancer(ctx, ep)
    manifest = tmp_path / "etc/kubernetes/manifests/kube-vip.yaml"
    assert manifest.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(manifest.read_text())["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf"
    assert not (tmp_path / "etc/haproxy").exists()


def test_phase_without_an_endpoint_skips(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"kube_control_plane"})
    run_loadbalancer(ctx, None)
    assert [c.status for c in ctx.phase.changes] == [Status.SKIPPED]


# ---- external mode: the check runs on the (live) node, here this host ----------------------------
@pytest.fixture
def tls_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real HTTPS server on 127.0.0.1 with a cert from our PKI, answering /readyz 200."""
    import http.server
    import ssl
    import threading

    from bootstrap.pki.store import ensure_pki

    spec = build_spec({"apiserver_advertise_address": "127.0.0.1", "node_name": "lb",
                       "encryption_algorithm": "ECDSA-P256"}, None)
    ensure_pki(RunContext(spec, LocalTarget(tmp_path)), ["ca", "apiserver"])
    pki = tmp_path / "etc/kubernetes/pki"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_external_lb_is_checked_and_a_dead_one_is_warned_about(tls_server: int, tmp_path: Path) -> None:
    spec = build_spec({"apiserver_advertise_address": "10.0.0.21", "node_name": "w1"}, None)
    for port, status, detail in [(tls_server, Status.UNCHANGED, "answers, /readyz 200"),
                                 (_free_port(), Status.WARNING, "not reachable from")]:
        ep = endpoint_from_vars({"loadbalancer_apiserver": {"address": "127.0.0.1", "port": port}}, CPS)
        ctx = RunContext(spec, LocalTarget("/"), roles=frozenset({"kube_node"}))  # read-only commands only
        run_loadbalancer(ctx, ep)
        [change] = ctx.phase.changes
        assert change.status == status and detail in change.detail, change
