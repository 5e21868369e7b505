"""Phase `loadbalancer`: the HA API endpoint on each node, by endpoint mode and the node's roles.

| mode                  | control planes                                   | workers                          |
|-----------------------|--------------------------------------------------|----------------------------------|
| external              | check the LB answers (warn, never fail)          | same                             |
| vip, keepalived       | HAProxy *:PORT + keepalived (VRRP) holding the VIP | nothing (they dial the VIP)    |
| vip, kube-vip         | kube-vip static pod manifest                     | nothing                          |
| localhost             | nothing (their own API server)                   | HAProxy 127.0.0.1:PORT           |

Configs are validated by the tools themselves ON THE NODE (`haproxy -c`, `keepalived -t`) from a
staged copy, then renamed into place, so a bad render never replaces a working config. Services
are (re)loaded only when a config changed: a second run changes nothing.
"""

from __future__ import annotations

import ipaddress
import shlex

from bootstrap.artifacts.bundle import LB_PACKAGES
from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Hosts, Node, Phase
from bootstrap.engine.result import Change, Status
from bootstrap.engine.runner import RunState
from bootstrap.errors import PhaseError
from bootstrap.phases.node import install_packages
from bootstrap.render import loadbalancer as lb
from bootstrap.spec.endpoint import EndpointMode, EndpointSpec, VipProvider
from bootstrap.spec.model import KUBERNETES_DIR, MANIFESTS_DIR
from bootstrap.transport.base import Target, read_only

HELP = "Set up the HA API endpoint: HAProxy + keepalived VIP, kube-vip, or a localhost HAProxy on workers"


def run(ctx: RunContext) -> None:
    run_loadbalancer(ctx, ctx.spec.api_endpoint)


def run_loadbalancer(ctx: RunContext, ep: EndpointSpec | None) -> None:
    if ep is None:
        ctx.skip("API endpoint", "no endpoint mode set: a single API server, no load balancer")
        return
    is_cp = ctx.is_control_plane
    if ep.mode == EndpointMode.EXTERNAL:
        _check_external(ctx, ep)
    elif ep.mode == EndpointMode.LOCALHOST:
        if is_cp:
            ctx.skip("localhost load balancer", "control planes use their own API server")
            return
        _install(ctx, ("haproxy",), "installing HAProxy")
        changed = ctx.ensure_file_checked(lb.HAPROXY_CONFIG, lb.haproxy_cfg(ep, "worker").encode(), 0o644,
                                          "haproxy -c -q -f {}", "HAProxy")
        ctx.service("haproxy", restart=changed, why="haproxy.cfg changed", reload=True)
    elif not is_cp:
        ctx.skip("virtual IP", f"workers dial the VIP {ep.address}:{ep.port}")
    elif ep.provider == VipProvider.KUBE_VIP:
        _kube_vip(ctx, ep)
    else:
        _keepalived(ctx, ep)


# ---- vip: keepalived + HAProxy ------------------------------------------------------------------
def _keepalived(ctx: RunContext, ep: EndpointSpec) -> None:
    self_ip = ctx.spec.advertise_address
    if ep.backend_for(self_ip) is None:
        raise PhaseError(f"{ctx.target.name} ({self_ip}) is not among the endpoint's control planes",
                         hint="the VIP's peers come from kube_control_plane in the inventory")
    _install(ctx, LB_PACKAGES, "installing HAProxy and keepalived")
    interface = _interface(ctx, ep)
    haproxy_changed = ctx.ensure_file_checked(
        lb.HAPROXY_CONFIG, lb.haproxy_cfg(ep, "control-plane").encode(), 0o644, "haproxy -c -q -f {}", "HAProxy"
    )
    # The check script first: keepalived -t disables a track script it cannot find.
    ctx.ensure_dir("/etc/keepalived", 0o755)
    script_changed = ctx.ensure_file(lb.CHECK_SCRIPT, lb.check_script(ep).encode(), 0o755)
    conf = lb.keepalived_conf(ep, self_ip, ctx.spec.node.name, interface).encode()
    conf_changed = ctx.ensure_file_checked(lb.KEEPALIVED_CONFIG, conf, 0o644, "keepalived -t -f {}", "keepalived")
    # HAProxy first: keepalived's check goes through it.
    ctx.service("haproxy", restart=haproxy_changed, why="haproxy.cfg changed", reload=True)
    ctx.service("keepalived", restart=conf_changed or script_changed, why="keepalived config changed", reload=True)


def _interface(ctx: RunContext, ep: EndpointSpec) -> str:
    """The NIC for the VIP: the configured one, else the one holding this node's own address."""
    self_ip = ctx.spec.advertise_address
    result = ctx.fact("ip -o addr show")
    if result is None:
        if not ep.interface:
            ctx.warn("VIP interface", "guessed eth0 under --rootfs: set kbootstrap_vip_interface")
        return ep.interface or "eth0"
    found: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("inet", "inet6"):
            found.setdefault(parts[1].split("@")[0], []).append(parts[3])
    if ep.interface:
        if ep.interface not in found:
            raise PhaseError(f"interface {ep.interface} for the VIP does not exist on {ctx.target.name}",
                             hint="set kbootstrap_vip_interface to one of " + ", ".join(sorted(found)))
        iface = ep.interface
    else:
        iface = next((n for n, addrs in found.items() if any(a.split("/")[0] == self_ip for a in addrs)), "")
        if not iface:
            raise PhaseError(f"no interface on {ctx.target.name} holds its address {self_ip}",
                             hint="set kbootstrap_vip_interface")
    nets = [ipaddress.ip_interface(a).network for a in found.get(iface, [])]
    vip = ipaddress.ip_address(ep.address)
    if nets and not any(vip in n for n in nets if n.version == vip.version):
        ctx.warn(f"VIP {ep.address}", f"not in the subnet of {iface} ({', '.join(map(str, nets))}): "
                 "ARP will not reach clients on the segment")
    return iface


# ---- vip: kube-vip ------------------------------------------------------------------------------
def _kube_vip(ctx: RunContext, ep: EndpointSpec) -> None:
    interface = _interface(ctx, ep)
    # Only the init node has super-admin.conf; kube-vip needs it there until admin.conf's group is bound.
    super_admin = f"{KUBERNETES_DIR}/super-admin.conf"
    kubeconfig = super_admin if ctx.state(super_admin) is not None else f"{KUBERNETES_DIR}/admin.conf"
    ctx.ensure_dir(MANIFESTS_DIR, 0o755)
    ctx.ensure_file(f"{MANIFESTS_DIR}/{lb.KUBE_VIP_MANIFEST}",
                    lb.kube_vip_manifest(ep, interface, kubeconfig).encode(), 0o600,
                    detail=f"VIP {ep.address} on {interface}")


# ---- external -----------------------------------------------------------------------------------
def _check_external(ctx: RunContext, ep: EndpointSpec) -> None:
    what = f"load balancer {ep.address}:{ep.port}"
    port = int(ep.port)
    url = shlex.quote(f"https://{lb.host_port(ep.address, port)}{ep.health_path}")
    probe = shlex.quote(f"</dev/tcp/{ep.address}/{port}")
    # Read-only, so it also runs in dry-run. Before the API servers run the LB may well answer 503.
    result = ctx.fact(f"""
if ! timeout 3 bash -c {probe} 2>/dev/null; then echo unreachable; exit 0; fi
if command -v curl >/dev/null; then
  curl -sk --max-time 3 -o /dev/null -w '%{{http_code}}\\n' {url} || echo tls-failed
else echo tcp-ok; fi
""", timeout=15, now=True)
    if result is None:
        ctx.skip(what, "not a live host (--rootfs)")
        return
    verdict = (result.stdout.strip().splitlines() or ["unknown"])[-1]
    if verdict == "200":
        ctx.record(what, Status.UNCHANGED, f"answers, {ep.health_path} 200")
    elif verdict == "tcp-ok":
        ctx.record(what, Status.UNCHANGED, "accepts TCP connections (no curl for a /readyz check)")
    elif verdict == "unreachable":
        ctx.warn(what, f"not reachable from {ctx.target.name}: nodes will not reach the API servers through it")
    else:
        ctx.warn(what, f"reachable, but {ep.health_path} answered {verdict} (no ready API server behind it yet?)")


# ---- packages -------------------------------------------------------------------------------------
def _install(ctx: RunContext, packages: tuple[str, ...], what: str) -> None:
    install_packages(ctx, packages, what)


# ---- fleet --------------------------------------------------------------------------------------
def _applies(node: Node, run: RunState) -> bool:
    ctx = run.contexts.get(node.name)
    endpoint = ctx.spec.api_endpoint if ctx is not None else None
    if endpoint is None or endpoint.mode == EndpointMode.EXTERNAL:
        return True
    if endpoint.mode == EndpointMode.LOCALHOST:
        return not node.is_control_plane
    return node.is_control_plane


def report_vip(run: RunState, names: list[str]) -> None:
    """After the phase: who holds the VIP, on the first control plane's report (a warning when more
    than one does: VRRP between them is blocked somewhere)."""
    endpoint = run.contexts[names[0]].spec.api_endpoint
    if endpoint is None or not endpoint.uses_haproxy_on_control_planes or run.dry_run:
        return
    live = [n for n in names if run.contexts[n].live]
    if not live:
        return
    holders = [n for n in live if holds_vip(run.contexts[n].target, endpoint)]
    change = vip_change("loadbalancer", endpoint, holders)
    run.note(live[0], change.item, change.status, change.detail)


def holds_vip(target: Target, endpoint: EndpointSpec) -> bool:
    return bool(read_only(target, f"ip -o addr show to {shlex.quote(endpoint.address)}").stdout.strip())


def vip_change(phase: str, endpoint: EndpointSpec, holders: list[str]) -> Change:
    """The report line after the phase: who holds the VIP (a warning when more than one does)."""
    status = Status.UNCHANGED
    if len(holders) > 1:  # split brain: VRRP between the control planes is blocked somewhere
        status, detail = Status.WARNING, f"held by {len(holders)} nodes at once: {', '.join(holders)}"
    elif holders:
        detail = f"held by {holders[0]}"
    else:
        detail = "not held yet: keepalived waits for a ready API server behind HAProxy"
    return Change(phase, f"VIP {endpoint.address}", status, detail)


# Between control-plane (static pods written) and kubelet-start, so kube-vip's manifest is there when
# the kubelet starts and workers' proxies before their kubelet.
PHASE = Phase(
    "loadbalancer",
    HELP,
    run,
    hosts=Hosts("the hosts the API endpoint mode puts a load balancer on", _applies),
    after=report_vip,
    fleet_only=True,
)
