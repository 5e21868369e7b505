"""The HA API endpoint on real lab machines: 3 control planes + 1 worker, Debian's keepalived and HAProxy
installed from the offline bundle by the `loadbalancer` phase over SSH.

No API server can run in the lab (no kubelet or apiserver binary), so the data path is tested with a
STAND-IN on every control plane: a small Python HTTPS server on *:6443 serving the apiserver
certificate we issue (SANs from endpoint_sans: the VIP is in them), answering GET /readyz with 200
and GET /who with its node name. HAProxy health-checks it exactly as it would the API server
(GET /readyz over TLS), and clients verify the certificate against the cluster CA for the VIP.

The control planes run vip mode (keepalived + HAProxy on *:8443); the worker runs localhost mode
(HAProxy on 127.0.0.1:6443). One lab covers both.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.artifacts.bundle import load_bundle
from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Tree
from bootstrap.engine.result import HostReport, RunResult
from bootstrap.engine.runner import RunState, run_tree
from bootstrap.lab import ops
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh
from bootstrap.phases import loadbalancer
from bootstrap.pki.store import ensure_pki
from bootstrap.render.loadbalancer import HAPROXY_STATS_SOCKET
from bootstrap.spec.endpoint import control_plane_endpoint_for, endpoint_from_vars, endpoint_sans
from bootstrap.spec.inventory import load_inventory
from bootstrap.spec.load import build_spec
from bootstrap.transport.local import LocalTarget
from bootstrap.workflow.fleet_spec import etcd_members, node_spec
from bootstrap.workflow.options import FleetOptions
from bootstrap.workflow.session import close, connect

pytestmark = pytest.mark.lab

FAILOVER_BOUND = 5.0  # seconds, the issue's target
PKI = "/etc/kubernetes/pki"
STANDIN = r'''#!/usr/bin/python3
# Test stand-in for kube-apiserver: TLS on *:6443 with the apiserver cert; /readyz -> ok, /who -> node.
# Like the real one, each connection's TLS handshake runs in its own thread with a timeout: a client
# that connects and sends nothing must not stall everyone else (HAProxy would then mark us DOWN).
import http.server, socket, ssl
class H(http.server.BaseHTTPRequestHandler):
    timeout = 10
    def setup(self):
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()
    def do_GET(self):
        body = b"ok" if self.path.startswith("/readyz") else socket.gethostname().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    def handle_error(self, request, client_address): pass  # a client gone mid-handshake: nothing to do
srv = S(("0.0.0.0", 6443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
srv.serve_forever()
'''
STANDIN_UNIT = """[Unit]
Description=kbootstrap test stand-in for kube-apiserver (TLS :6443, /readyz)
[Service]
ExecStart=/usr/bin/python3 /usr/local/bin/standin-apiserver
Restart=always
[Install]
WantedBy=multi-user.target
"""


def cps(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "control-plane"]


def worker(lab: LabState) -> str:
    return next(m.name for m in lab.machines if m.role == "worker")


def run_phase(ha: dict[str, Any]) -> dict[str, HostReport]:
    """The loadbalancer phase: control planes in vip mode, the worker in localhost mode (each host's
    spec carries its endpoint; the phase selects its hosts from it)."""
    inv, cluster = ha["inventory"], ha["cluster"]
    names = [h.name for h in inv.hosts]
    conns = connect(inv, names, FleetOptions(str(inv.path), forks=8))
    bad = {n: c for n, c in conns.items() if isinstance(c, Exception)}
    assert not bad, bad
    members = etcd_members(inv)

    def spec_for(n: str) -> Any:
        endpoint = ha["vip_ep"] if inv.host(n).is_control_plane else ha["local_ep"]
        return node_spec(cluster, inv.host(n), members).model_copy(update={"api_endpoint": endpoint})

    contexts = {n: RunContext(spec_for(n), conns[n], bundle=ha["bundle"], roles=inv.host(n).roles)  # type: ignore[arg-type]
                for n in names}
    run = RunState({n: inv.host(n) for n in names}, contexts, RunResult({}), forks=8, inventory=inv)
    try:
        run_tree(Tree((loadbalancer.PHASE,)), run, set())
    finally:
        close(conns)
    return run.result.hosts


def issue_standin_certs(ha: dict[str, Any], store: Path) -> None:
    """The cluster CA once, then each control plane's apiserver cert (SANs: VIP, node IP, ...)."""
    inv, cluster = ha["inventory"], ha["cluster"]
    ensure_pki(RunContext(cluster, LocalTarget(store / "ca")), ["ca"])
    ca_crt = (store / "ca" / PKI.lstrip("/") / "ca.crt").read_bytes()
    ca_key = (store / "ca" / PKI.lstrip("/") / "ca.key").read_bytes()
    ha["ca_file"] = store / "ca" / PKI.lstrip("/") / "ca.crt"
    lab = ha["lab"]
    for name in cps(lab):
        root = store / name
        local = LocalTarget(root)
        local.write(f"{PKI}/ca.crt", ca_crt, 0o644)
        local.write(f"{PKI}/ca.key", ca_key, 0o600)
        ensure_pki(RunContext(node_spec(cluster, inv.host(name), ()), local), ["apiserver"])
        crt = (root / PKI.lstrip("/") / "apiserver.crt").read_text()
        key = (root / PKI.lstrip("/") / "apiserver.key").read_text()
        script = (
            f"mkdir -p {PKI} && cat > {PKI}/apiserver.crt <<'EOF'\n{crt}EOF\n"
            f"cat > {PKI}/apiserver.key <<'EOF'\n{key}EOF\nchmod 600 {PKI}/apiserver.key\n"
            f"cat > /usr/local/bin/standin-apiserver <<'EOF'\n{STANDIN}EOF\n"
            f"cat > /etc/systemd/system/standin-apiserver.service <<'EOF'\n{STANDIN_UNIT}EOF\n"
            "systemctl daemon-reload && systemctl enable -q --now standin-apiserver\n"
            "for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/6443) 2>/dev/null && exit 0; sleep 0.1; done; exit 1\n"
        )
        code, out, err = sh(lab, name, script, timeout=60)
        assert code == 0, (name, out, err)


@pytest.fixture(scope="module")
def ha(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab: LabState = module_lab_factory(control_planes=3, workers=1)
    return setup_ha(lab, bundle, tmp_path_factory.mktemp("pki"))


def setup_ha(lab: LabState, bundle: Path, pki_store: Path) -> dict[str, Any]:
    """Stand-ins with our certs on the control planes, then the loadbalancer phase on every host
    (also used by bench/vip_failover.py)."""
    inv = load_inventory(str(Path(lab.inventory_dir) / "hosts.yaml"))
    vip = str(ipaddress.ip_network(lab.subnet)[250])
    vip_ep = endpoint_from_vars({"kbootstrap_vip": vip}, inv.control_planes())
    local_ep = endpoint_from_vars({"kbootstrap_api_endpoint_mode": "localhost"}, inv.control_planes())
    assert vip_ep is not None and local_ep is not None
    first = inv.control_planes()[0]
    flags = {
        "control_plane_endpoint": control_plane_endpoint_for(vip_ep, inv.control_planes()),
        "apiserver_cert_extra_sans": ",".join(endpoint_sans(vip_ep) + endpoint_sans(local_ep)),
        "apiserver_advertise_address": first.ip,
        "node_name": first.name,
    }
    cluster = build_spec(flags, None, defaults=inv.cluster_values)
    ha: dict[str, Any] = {"lab": lab, "inventory": inv, "vip": vip, "vip_ep": vip_ep, "local_ep": local_ep,
                          "cluster": cluster, "bundle": load_bundle(bundle), "stopped": []}
    issue_standin_certs(ha, pki_store)
    started = time.monotonic()
    ha["first"] = run_phase(ha)
    ha["first_seconds"] = time.monotonic() - started
    return ha


# ---- helpers ------------------------------------------------------------------------------------
def vip_holders(lab: LabState, vip: str, names: list[str]) -> list[str]:
    """Read straight from each machine's network namespace on the host: fast, no SSH."""
    out = []
    for n in names:
        m = lab.machine(n)
        p = subprocess.run(["ip", "netns", "exec", m.netns, "ip", "-o", "addr", "show", "to", vip],
                           capture_output=True, text=True, timeout=5)
        if p.stdout.strip():
            out.append(n)
    return out


def wait_for(fn: Any, timeout: float, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def https_get(host: str, port: int, path: str, ca_file: Path, server_name: str, timeout: float = 3) -> str:
    """A real TLS client: verifies the chain to the cluster CA and that server_name is in the SANs."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {server_name}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200") or head.startswith("HTTP/1.1 200"), head
    return body


def backend_status(lab: LabState, on: str) -> dict[str, str]:
    """HAProxy's view of each server, from its stats socket: {server name: UP|DOWN|...}."""
    code, out, err = sh(lab, on, f"echo 'show stat' | socat stdio {HAPROXY_STATS_SOCKET}")
    assert code == 0, err
    header = out.splitlines()[0].lstrip("# ").split(",")
    rows = [dict(zip(header, ln.split(","), strict=False)) for ln in out.splitlines()[1:] if ln]
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "kube-apiserver" and r["svname"] not in
            ("FRONTEND", "BACKEND")}


def restart_stopped(ha: dict[str, Any]) -> str:
    """Boot the last stopped control plane again and wait until its keepalived runs (as BACKUP)."""
    lab = ha["lab"]
    back = ha["stopped"].pop()
    ops.start_machine(lab.name, back)
    assert wait_for(lambda: sh(lab, back, "systemctl is-active keepalived")[1].strip() == "active", 30)
    return back


def measure_failover(ha: dict[str, Any], force: bool) -> tuple[str, str, float]:
    lab, vip = ha["lab"], ha["vip"]
    alive = [n for n in cps(lab) if n not in ha["stopped"]]
    holders = wait_for(lambda: vip_holders(lab, vip, alive), 20)
    assert len(holders) == 1, holders
    holder = holders[0]
    others = [n for n in alive if n != holder]
    started = time.monotonic()
    ops.stop_machine(lab.name, holder, force=force)
    ha["stopped"].append(holder)
    new: list[str] = []
    while time.monotonic() - started < 30:
        new = vip_holders(lab, vip, others)
        if new:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert len(new) == 1, f"VIP not taken over after {elapsed:.1f}s: {new}"
    return holder, new[0], elapsed


# ---- tests --------------------------------------------------------------------------------------
def test_phase_installs_validates_and_second_run_changes_nothing(ha: dict[str, Any]) -> None:
    lab = ha["lab"]
    for name, r in ha["first"].items():
        assert not r.failed, (name, r.error, [p.error for p in r.phases])
        assert r.changed > 0, name
    for cp in cps(lab):
        _, out, _ = sh(lab, cp, "systemctl is-active haproxy keepalived; haproxy -c -q -f /etc/haproxy/haproxy.cfg "
                          "&& keepalived -t -f /etc/keepalived/keepalived.conf && echo valid")
        assert out.split() == ["active", "active", "valid"], out
    _, out, _ = sh(lab, worker(lab), "systemctl is-active haproxy; command -v keepalived || echo no-keepalived; "
                      "grep -c 'bind 127.0.0.1:6443' /etc/haproxy/haproxy.cfg")
    assert out.split() == ["active", "no-keepalived", "1"], out
    rerun = run_phase(ha)
    changed = {n: [(c.item, c.detail) for p in r.phases for c in p.changes if c.status.changed]
               for n, r in rerun.items()}
    assert all(not v for v in changed.values()), changed
    assert not any(r.failed for r in rerun.values())
    print(f"loadbalancer phase: first run {ha['first_seconds']:.1f}s on 4 hosts")


def test_vip_answers_with_a_cert_valid_for_the_vip(ha: dict[str, Any]) -> None:
    lab, vip = ha["lab"], ha["vip"]
    holders = wait_for(lambda: vip_holders(lab, vip, cps(lab)), 20)
    assert len(holders) == 1, f"exactly one control plane holds {vip}: {holders}"
    # Which one: the first whose check passes (nopreempt: priorities only break ties at the same moment).
    seen = {https_get(vip, ha["vip_ep"].port, "/who", ha["ca_file"], vip) for _ in range(9)}
    assert seen == set(cps(lab)), f"HAProxy behind the VIP spreads over every control plane: {seen}"
    # And from the worker, with curl and the CA: same answer, name checked against the SANs.
    code, out, err = sh(lab, worker(lab), f"curl -sS --cacert /dev/stdin https://{vip}:{ha['vip_ep'].port}/readyz",
                        stdin=ha["ca_file"].read_text())
    assert (code, out) == (0, "ok"), err


def test_ansible_loadbalancer_role_in_vip_mode_finds_the_same_state(ha: dict[str, Any], tmp_path: Path) -> None:
    """The loadbalancer role through Ansible (the inventory now says vip mode; every other phase skipped)
    finds the control planes' HAProxy and keepalived as the SSH transport left them, and reports the
    VIP's holder on the first control plane as over SSH."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core is not installed (pip install ansible-core)")
    from bootstrap.ansible.playbook import run_playbook

    lab, vip = ha["lab"], ha["vip"]
    holders = wait_for(lambda: vip_holders(lab, vip, cps(lab)), 20)
    assert len(holders) == 1, holders
    gv = Path(lab.inventory_dir) / "group_vars" / "all" / "vip.yml"
    gv.write_text(yaml.safe_dump({"kbootstrap_vip": vip}))
    from bootstrap.phases.tree import INIT

    others = [p.name for p in INIT if p.name != "loadbalancer"]
    try:
        run = run_playbook(Path(lab.inventory_dir) / "hosts.yaml", "cluster.yml", hosts=cps(lab), limit=cps(lab),
                           extravars={"kbootstrap_skip_phases": others, "kbootstrap_validate": False,
                                      "kbootstrap_pki_dir": str(tmp_path / "pki")})
    finally:
        gv.unlink()
    assert run.rc == 0, {n: r.error for n, r in run.collector.reports.items()}
    for n in cps(lab):
        lb = next(p for p in run.collector.reports[n].phases if p.name == "loadbalancer")
        assert lb.changed == 0, (n, [(c.item, c.detail) for c in lb.changes if c.status.changed])
    items = {c.item: c.detail for p in run.collector.reports[cps(lab)[0]].phases for c in p.changes}
    assert items[f"VIP {vip}"] == f"held by {holders[0]}"


def test_haproxy_marks_a_stopped_backend_down(ha: dict[str, Any]) -> None:
    lab = ha["lab"]
    holder, victim = cps(lab)[0], cps(lab)[2]
    assert set(backend_status(lab, holder).values()) == {"UP"}
    sh(lab, victim, "systemctl stop standin-apiserver")
    started = time.monotonic()
    down = wait_for(lambda: backend_status(lab, holder).get(victim) == "DOWN", 15)
    took = time.monotonic() - started
    assert down, backend_status(lab, holder)
    print(f"HAProxy marked {victim} DOWN {took:.1f}s after its /readyz stopped answering (inter 1s, fall 2)")
    # Meanwhile every request through the VIP still succeeds, from the others.
    seen = {https_get(ha["vip"], ha["vip_ep"].port, "/who", ha["ca_file"], ha["vip"]) for _ in range(6)}
    assert victim not in seen and seen
    sh(lab, victim, "systemctl start standin-apiserver")
    assert wait_for(lambda: backend_status(lab, holder).get(victim) == "UP", 15)


def test_vip_moves_when_its_holder_stops(ha: dict[str, Any]) -> None:
    lab = ha["lab"]
    old, new, took = measure_failover(ha, force=False)
    print(f"VIP failover (kbootstrap lab stop {old}, orderly): {took:.2f}s -> {new}")
    ha["failover_graceful"] = took
    assert took <= FAILOVER_BOUND, f"VIP took {took:.2f}s to move (bound {FAILOVER_BOUND}s)"
    # The data path through the VIP works again, and the new holder's HAProxy has marked the old one down.
    body = wait_for(lambda: _try_get(ha), 10)
    assert body and body != old
    assert wait_for(lambda: backend_status(lab, new).get(old) == "DOWN", 15), backend_status(lab, new)


def _try_get(ha: dict[str, Any]) -> str:
    try:
        return https_get(ha["vip"], ha["vip_ep"].port, "/who", ha["ca_file"], ha["vip"], timeout=2)
    except OSError:
        return ""


def test_worker_local_proxy_keeps_forwarding_with_a_control_plane_gone(ha: dict[str, Any]) -> None:
    lab = ha["lab"]
    gone = ha["stopped"][-1]
    w = worker(lab)
    # Right after the loss too: redispatch retries another server while the health check catches up.
    code, out, err = sh(lab, w, "for i in $(seq 1 20); do curl -sSk --max-time 8 https://127.0.0.1:6443/who "
                        "2>/tmp/curl.err || echo FAIL $(date +%T.%N) $(cat /tmp/curl.err); echo; done", timeout=200)
    answers = [ln for ln in out.splitlines() if ln]
    assert code == 0 and len(answers) == 20, (out, err)
    if any(a.startswith("FAIL") for a in answers) or gone in answers:
        log = sh(lab, w, "journalctl -u haproxy --no-pager -n 50; date +%T.%N")[1]
        raise AssertionError(f"{answers}\n{backend_status(lab, w)}\n{log}")
    assert set(answers) == set(cps(lab)) - {gone}
    assert wait_for(lambda: backend_status(lab, w).get(gone) == "DOWN", 15)


def test_forced_power_off_of_the_holder_also_moves_the_vip(ha: dict[str, Any]) -> None:
    lab = ha["lab"]
    # keepalived is enabled: it comes back as BACKUP; nopreempt keeps the VIP where it is.
    back = restart_stopped(ha)
    time.sleep(3)
    assert back not in vip_holders(lab, ha["vip"], cps(lab)), "the returning node must not take the VIP back"
    old, new, took = measure_failover(ha, force=True)
    print(f"VIP failover (kbootstrap lab stop --force {old}, no goodbye advert): {took:.2f}s -> {new}")
    assert took <= FAILOVER_BOUND, f"VIP took {took:.2f}s to move (bound {FAILOVER_BOUND}s)"
