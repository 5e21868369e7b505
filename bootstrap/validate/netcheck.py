"""`kbootstrap netcheck`: every node checks every other node over the network, before any API is up.

From each source node: resolve every node's name (and the control-plane endpoint's) with the node's
own resolver, ping every other node, and TCP-connect to every port a peer's role must serve and whose
service is expected up. Each source gets ONE bash script that runs all its probes as background jobs
and prints one tab-separated line per probe; sources run in parallel. Probes use only getent, ping,
timeout and bash's /dev/tcp: nothing is installed for the check.

Whether a port is "expected up" comes from facts read on the target first (is the etcd unit active,
is a kubelet installed and active, is there an API server manifest) plus the spec: a port whose
service is not running is listed as skipped with the reason, never as a failure.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bootstrap.spec.inventory import Inventory, InventoryHost
from bootstrap.spec.model import MANIFESTS_DIR, ClusterSpec, EtcdMode, is_ip
from bootstrap.transport.base import Target

ENDPOINT = "endpoint"  # the column for the control-plane endpoint
ETCD_CLIENT_PORT, ETCD_PEER_PORT, KUBELET_PORT = 2379, 2380, 10250
TCP_TIMEOUT = 2  # seconds: a dropped SYN shows as a timeout, a closed port answers at once
DNS_TIMEOUT = 3
PING_COUNT, PING_DEADLINE = 2, 2  # 2 echoes 0.2 s apart; any reply counts (one lost packet is no fault)
SCRIPT_TIMEOUT = 30.0  # the whole script; each probe is bounded far below this
MARK = "KBNC"  # prefix of result lines: anything else on stdout (motd, shell noise) is ignored

OK, FAIL, SKIPPED, NOT_RUN = "ok", "fail", "skipped", "not-run"


# ---- facts ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeFacts:
    """What runs on a node, read over SSH from the control machine. reachable=False: no facts."""

    reachable: bool
    error: str = ""
    units: Mapping[str, str] = field(default_factory=dict)  # unit -> systemctl is-active answer
    kubelet_installed: bool = False
    manifests: frozenset[str] = frozenset()  # static pod manifests present (file names)

    def active(self, unit: str) -> bool:
        return self.units.get(unit) == "active"


FACT_UNITS = ("etcd", "kubelet", "containerd")
FACTS_SCRIPT = f"""export LC_ALL=C
for u in {" ".join(FACT_UNITS)}; do printf 'unit %s %s\\n' "$u" "$(systemctl is-active "$u" 2>/dev/null || true)"; done
if command -v kubelet >/dev/null 2>&1; then echo 'kubelet-binary yes'; else echo 'kubelet-binary no'; fi
for f in {MANIFESTS_DIR}/*.yaml; do [ -e "$f" ] && printf 'manifest %s\\n' "${{f##*/}}"; done
exit 0
"""


def parse_facts(text: str) -> NodeFacts:
    units: dict[str, str] = {}
    manifests: set[str] = set()
    kubelet = False
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "unit":
            units[parts[1]] = parts[2] if len(parts) > 2 else "unknown"
        elif parts[:2] == ["kubelet-binary", "yes"]:
            kubelet = True
        elif len(parts) == 2 and parts[0] == "manifest":
            manifests.add(parts[1])
    return NodeFacts(True, units=units, kubelet_installed=kubelet, manifests=frozenset(manifests))


def gather_facts(target: Target) -> NodeFacts:
    try:
        result = target.run(FACTS_SCRIPT, timeout=SCRIPT_TIMEOUT)
    except Exception as exc:  # a host lost mid-run is a finding, not a crash
        return NodeFacts(False, error=one_line(exc))
    if not result.ok:
        return NodeFacts(False, error=f"facts script exited {result.exit_code}: {result.stderr.strip()[-200:]}")
    return parse_facts(result.stdout)


# ---- the plan ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    source: str
    target: str  # a node name, or ENDPOINT
    kind: str  # dns | ping | port
    subject: str  # the name resolved, the address pinged, or the address connected to
    port: int = 0
    service: str = ""  # what should answer on the port: "etcd client", "API server", "kubelet"
    expect: tuple[str, ...] = ()  # dns: addresses the name may resolve to (empty: any answer)
    skip: str = ""  # not run, and why

    @property
    def label(self) -> str:
        """How a failure is named in the matrix: name, ping, or the port number."""
        return "name" if self.kind == "dns" else "ping" if self.kind == "ping" else str(self.port)

    def describe(self) -> str:
        if self.kind == "dns":
            return f"resolve {self.subject}"
        if self.kind == "ping":
            return f"ping {self.subject}"
        return f"tcp {_host_port(self.subject, self.port)} ({self.service})"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _kubelet_state(name: str, facts: NodeFacts | None) -> str:
    """Why no kubelet answers on a node ("" when one should)."""
    if facts is None or not facts.reachable:
        return f"no facts from {name} (unreachable over SSH)"
    if not facts.kubelet_installed:
        return "kubelet not running (not installed)"
    if not facts.active("kubelet"):
        return f"kubelet not running (unit {facts.units.get('kubelet') or 'unknown'})"
    return ""


def expected_ports(host: InventoryHost, spec: ClusterSpec, facts: NodeFacts | None) -> list[tuple[int, str, str]]:
    """(port, service, skip reason or "") for every port the host's role must serve."""
    out: list[tuple[int, str, str]] = []
    no_facts = f"no facts from {host.name} (unreachable over SSH)" if facts is None or not facts.reachable else ""
    kubelet_down = _kubelet_state(host.name, facts)
    if host.is_etcd and spec.etcd_external is None:
        if no_facts:
            why = no_facts
        elif spec.etcd_mode == EtcdMode.HOST:
            state = (facts.units.get("etcd") if facts else None) or "unknown"
            why = "" if facts and facts.active("etcd") else f"etcd not running (systemd unit etcd is {state})"
        elif facts and "etcd.yaml" not in facts.manifests:
            why = "etcd not running (no static pod manifest)"
        else:
            why = f"etcd not running (static pod needs a kubelet; {kubelet_down})" if kubelet_down else ""
        out += [(ETCD_CLIENT_PORT, "etcd client", why), (ETCD_PEER_PORT, "etcd peer", why)]
    if host.is_control_plane:
        if no_facts:
            why = no_facts
        elif facts and "kube-apiserver.yaml" not in facts.manifests:
            why = "API server not running (no kube-apiserver manifest)"
        else:
            why = f"API server not running (static pod needs a kubelet; {kubelet_down})" if kubelet_down else ""
        out.append((spec.bind_port, "API server", why))
    # kubeadm runs a kubelet on every node, control planes included.
    out.append((KUBELET_PORT, "kubelet", no_facts or kubelet_down))
    return out


def plan_probes(
    inv: Inventory, spec: ClusterSpec, facts: Mapping[str, NodeFacts], sources: Sequence[str] | None = None
) -> dict[str, list[Probe]]:
    """Every probe of every source node, in a stable order (the order of the report)."""
    hosts = list(inv.hosts)
    names = [h.name for h in hosts]
    sources = list(sources) if sources is not None else names
    ep_host, ep_port = spec.endpoint_host_port()
    ports = {h.name: expected_ports(h, spec, facts.get(h.name)) for h in hosts}
    api_up = [h.name for h in hosts if any(svc == "API server" and not why for _, svc, why in ports[h.name])]
    plan: dict[str, list[Probe]] = {}
    for src in sources:
        probes: list[Probe] = []
        for h in hosts:
            # A node's own name must resolve too (to itself: loopback is fine there).
            probes.append(Probe(src, h.name, "dns", h.name, expect=tuple(dict.fromkeys((h.ip, h.address)))))
            if h.name == src:
                continue
            probes.append(Probe(src, h.name, "ping", h.ip))
            for port, service, why in ports[h.name]:
                probes.append(Probe(src, h.name, "port", h.ip, port, service, skip=why))
        if is_ip(ep_host):
            why = "the endpoint is an IP address: no name to resolve"
            probes.append(Probe(src, ENDPOINT, "dns", ep_host, skip=why))
        else:
            probes.append(Probe(src, ENDPOINT, "dns", ep_host))
        why = "" if api_up else "no API server running behind the endpoint"
        probes.append(Probe(src, ENDPOINT, "port", ep_host, ep_port, "API endpoint", skip=why))
        plan[src] = probes
    return plan


# ---- the script -------------------------------------------------------------------------------------
# Helpers shared by every probe job. Each job prints exactly one line in one write (atomic on a pipe),
# so concurrent jobs never interleave. $EPOCHREALTIME (bash 5) times probes without forking `date`.
_HELPERS = rf"""export LC_ALL=C
t0() {{ T0=${{EPOCHREALTIME/./}}; }}
ms() {{ if [ -n "$T0" ]; then echo $(( (${{EPOCHREALTIME/./}} - T0) / 1000 )); else echo -; fi; }}
r() {{ local d=${{4//$'\t'/ }}; d=${{d//$'\n'/ }}; printf '{MARK}\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${{d:0:300}}"; }}
dns() {{
  local out rc a addrs=""; t0
  out=$(timeout {DNS_TIMEOUT} getent ahosts "$2" 2>&1); rc=$?
  [ $rc -eq 124 ] && {{ out=$(timeout {DNS_TIMEOUT} getent ahosts "$2" 2>&1); rc=$?; }}  # as tcp: once more
  case $rc in
    0) while read -r a _; do case " $addrs " in *" $a "*) ;; *) addrs="$addrs $a";; esac; done <<<"$out"
       r "$1" ok "$(ms)" "${{addrs# }}";;
    2) r "$1" fail "$(ms)" "name not found (NXDOMAIN or no record)";;
    124) r "$1" fail "$(ms)" "resolver timed out after {DNS_TIMEOUT}s";;
    127) r "$1" fail "$(ms)" "getent not found on this node";;
    *) r "$1" fail "$(ms)" "getent exit $rc: $out";;
  esac
}}
png() {{
  local out rc; t0
  out=$(ping -n -q -c {PING_COUNT} -i 0.2 -w {PING_DEADLINE} "$2" 2>&1); rc=$?
  if [[ $out =~ ([0-9]+)\ received ]] && [ "${{BASH_REMATCH[1]}}" -gt 0 ]; then
    local rtt=""; [[ $out =~ =\ [0-9.]+/([0-9.]+)/ ]] && rtt="rtt ${{BASH_REMATCH[1]}} ms"
    r "$1" ok "$(ms)" "${{BASH_REMATCH[0]}} $rtt"
  elif [ $rc -eq 127 ]; then r "$1" fail "$(ms)" "ping not found on this node"
  else r "$1" fail "$(ms)" "no reply to {PING_COUNT} echo requests in {PING_DEADLINE}s"; fi
}}
tcp() {{
  local out rc; t0
  out=$(timeout {TCP_TIMEOUT} bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>&1); rc=$?
  # One more try after a timeout: on a loaded node a fork or SYN can miss the bound once; a
  # firewalled port still fails, TCP_TIMEOUT later.
  [ $rc -eq 124 ] && {{ out=$(timeout {TCP_TIMEOUT} bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>&1); rc=$?; }}
  case $rc in
    0) r "$1" ok "$(ms)" "connected";;
    124) r "$1" fail "$(ms)" "timed out after {TCP_TIMEOUT}s (packets dropped: firewall or host down?)";;
    *) out=${{out##*: }}; r "$1" fail "$(ms)" "${{out:-exit $rc}}";;
  esac
}}
"""


def probe_script(probes: Sequence[Probe]) -> str:
    """One script for one source: every probe not skipped, as a background job; ids index `probes`."""
    jobs = []
    for i, p in enumerate(probes):
        if p.skip:
            continue
        if p.kind == "dns":
            jobs.append(f"dns {i} {shlex.quote(p.subject)} &")
        elif p.kind == "ping":
            jobs.append(f"png {i} {shlex.quote(p.subject)} &")
        else:
            jobs.append(f"tcp {i} {shlex.quote(p.subject)} {p.port} &")
    return _HELPERS + "\n".join(jobs) + "\nwait\nexit 0\n"


# ---- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    status: str  # ok | fail | skipped | not-run
    detail: str = ""
    ms: int | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_json(self) -> dict[str, Any]:
        p = self.probe
        out: dict[str, Any] = {"source": p.source, "target": p.target, "kind": p.kind, "subject": p.subject}
        if p.kind == "port":
            out |= {"port": p.port, "service": p.service}
        out |= {"status": self.status, "detail": self.detail, "ms": self.ms}
        return out


_LINE = re.compile(rf"^{MARK}\t(\d+)\t(ok|fail)\t(-|\d+)\t(.*)$")


def _check_dns(probe: Probe, addresses: str, source: str) -> tuple[str, str]:
    """A name must resolve to the inventory's address for it (its own name may resolve to loopback)."""
    got = addresses.split()
    if not probe.expect or any(a in probe.expect for a in got):
        return OK, addresses
    if probe.target == source and got and all(_is_loopback(a) for a in got):
        return OK, f"{addresses} (own name on loopback)"
    return FAIL, f"resolves to {addresses or 'nothing'}, the inventory says {' or '.join(probe.expect)}"


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def parse_results(source: str, probes: Sequence[Probe], stdout: str) -> list[ProbeResult]:
    """Match result lines to probes; a probe the script never reported is a failure, not silence."""
    got: dict[int, tuple[str, str, int | None]] = {}
    for line in stdout.splitlines():
        m = _LINE.match(line)
        if m and int(m[1]) < len(probes):
            got[int(m[1])] = (m[2], m[4], None if m[3] == "-" else int(m[3]))
    out = []
    for i, p in enumerate(probes):
        if p.skip:
            out.append(ProbeResult(p, SKIPPED, p.skip))
        elif i not in got:
            out.append(ProbeResult(p, FAIL, "no result: the probe script ended before this probe reported"))
        else:
            status, detail, ms = got[i]
            if status == OK and p.kind == "dns":
                status, detail = _check_dns(p, detail, source)
            out.append(ProbeResult(p, status, detail, ms))
    return out


def run_source(source: str, target: Target | None, probes: Sequence[Probe], why_not: str = "") -> list[ProbeResult]:
    """Run one source's script; a source we cannot reach has every probe not run, with the reason."""
    if target is None:
        return [ProbeResult(p, SKIPPED if p.skip else NOT_RUN, p.skip or why_not) for p in probes]
    try:
        result = target.run(probe_script(probes), timeout=SCRIPT_TIMEOUT)
    except Exception as exc:
        why = f"{source} unreachable: {one_line(exc)}"
        return [ProbeResult(p, SKIPPED if p.skip else NOT_RUN, p.skip or why) for p in probes]
    return parse_results(source, probes, result.stdout)


@dataclass
class NetcheckReport:
    nodes: list[str]  # inventory order: rows and columns of the matrix
    results: list[ProbeResult]
    unreachable: dict[str, str]  # source -> why it could not run its probes
    seconds: float = 0.0
    _index: dict[tuple[str, str], list[ProbeResult]] | None = field(default=None, repr=False, compare=False)

    def by_pair(self) -> dict[tuple[str, str], list[ProbeResult]]:
        if self._index is None:  # results never change after the run: index them once
            self._index = {}
            for r in self.results:
                self._index.setdefault((r.probe.source, r.probe.target), []).append(r)
        return self._index

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(s, t) for s in self.nodes for t in self.nodes if s != t]

    def pair_status(self, source: str, target: str) -> str:
        results = self.by_pair().get((source, target), [])
        if any(r.failed for r in results):
            return FAIL
        if source in self.unreachable:
            return NOT_RUN
        return OK

    @property
    def failures(self) -> list[ProbeResult]:
        return [r for r in self.results if r.failed]

    @property
    def failed(self) -> bool:
        return bool(self.failures or self.unreachable)

    def counts(self) -> dict[str, int]:
        statuses = [self.pair_status(s, t) for s, t in self.pairs]
        return {
            "pairs": len(statuses),
            "checked": sum(1 for st in statuses if st != NOT_RUN),
            "failed": statuses.count(FAIL),
            "not_checked": statuses.count(NOT_RUN),
            "probes": len(self.results),
            "probes_failed": len(self.failures),
            "probes_skipped": sum(1 for r in self.results if r.status == SKIPPED),
            "unreachable": len(self.unreachable),
        }

    def summary(self) -> str:
        c = self.counts()
        failed_pairs = [f"{s}->{t}" for s, t in self.pairs if self.pair_status(s, t) == FAIL]
        # A host that could not be reached is a failure, never a quiet "not checked".
        lead = f"FAILED: {len(self.unreachable)} unreachable ({', '.join(sorted(self.unreachable))}); " \
            if self.unreachable else ""
        text = f"netcheck: {lead}{c['checked']} pairs checked, {c['failed']} failed"
        if failed_pairs:
            text += " (" + ", ".join(failed_pairs[:6]) + (", ..." if len(failed_pairs) > 6 else "") + ")"
        other = [r for r in self.failures if r.probe.target == ENDPOINT or r.probe.target == r.probe.source]
        if other:
            text += f"; {len(other)} endpoint/own-name probes failed"
        if self.unreachable:
            text += f"; not checked from {', '.join(sorted(self.unreachable))} (unreachable)"
        return text + f"; {c['probes']} probes in {self.seconds:.1f}s"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.failed,
            "summary": self.summary(),
            "counts": self.counts(),
            "nodes": self.nodes,
            "unreachable": self.unreachable,
            "failed_pairs": [
                {"source": s, "target": t, "failed": [r.probe.label for r in self.by_pair()[(s, t)] if r.failed]}
                for s, t in self.pairs
                if self.pair_status(s, t) == FAIL
            ],
            "seconds": round(self.seconds, 2),
            "probes": [r.to_json() for r in self.results],
        }


def one_line(exc: BaseException) -> str:
    one = getattr(exc, "one_line", None)
    text = one() if callable(one) else str(exc)
    return str(text).splitlines()[0] if text else type(exc).__name__


def _pmap(fn: Callable[[str], Any], names: Sequence[str], forks: int) -> dict[str, Any]:
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(names))), thread_name_prefix="netcheck") as pool:
        return dict(zip(names, pool.map(fn, names), strict=True))


# ---- in pieces, for the Ansible transport -------------------------------------------------------------
# There each node gathers its facts in one task and runs its own probes in the next (Ansible sees one
# host per task); the raw outputs come back to the controller, which plans again from the same facts
# and parses them as run_netcheck would.


def plan_for_source(inv: Inventory, spec: ClusterSpec, facts_text: Mapping[str, str], source: str) -> list[Probe]:
    """One source's probes, from the facts scripts' outputs of the nodes that answered."""
    facts = {n: parse_facts(t) for n, t in facts_text.items()}
    return plan_probes(inv, spec, facts, sources=[source])[source]


def assemble_report(
    inv: Inventory,
    spec: ClusterSpec,
    facts_text: Mapping[str, str],
    outputs: Mapping[str, str],
    why_not: Mapping[str, str],
    names: Sequence[str],
    seconds: float = 0.0,
) -> NetcheckReport:
    """The report from each source's probe script output; sources without one did not run, and why."""
    facts = {n: parse_facts(t) for n, t in facts_text.items()}
    plan = plan_probes(inv, spec, facts, sources=names)
    results: list[ProbeResult] = []
    why: dict[str, str] = {}
    for n in names:
        if n in outputs:
            results += parse_results(n, plan[n], outputs[n])
        else:
            why[n] = why_not.get(n) or "did not run its probes"
            results += run_source(n, None, plan[n], f"{n} unreachable: {why[n]}")
    return NetcheckReport(list(names), results, why, seconds)


def run_netcheck(
    inv: Inventory,
    spec: ClusterSpec,
    targets: Mapping[str, Target],
    *,
    unreachable: Mapping[str, str] | None = None,
    forks: int = 64,
) -> NetcheckReport:
    """Facts from every reachable node, then every source's probes, both rounds in parallel.

    `targets` are open connections (never reopened here); inventory hosts without one are reported
    unreachable with the reason from `unreachable` (the connect error)."""
    started = time.monotonic()
    names = [h.name for h in inv.hosts]
    why = dict(unreachable or {})
    for n in names:
        if n not in targets:
            why.setdefault(n, "no connection")
    live = [n for n in names if n in targets]
    facts: dict[str, NodeFacts] = _pmap(lambda n: gather_facts(targets[n]), live, forks)
    for n, f in facts.items():
        if not f.reachable:
            why[n] = f.error
    plan = plan_probes(inv, spec, {n: f for n, f in facts.items() if f.reachable})
    runnable = [n for n in names if n not in why]
    ran = _pmap(lambda n: run_source(n, targets[n], plan[n]), runnable, forks)
    results: list[ProbeResult] = []
    for n in names:
        if n in ran:
            res = ran[n]
            if res and all(r.status in (NOT_RUN, SKIPPED) for r in res) and any(r.status == NOT_RUN for r in res):
                why[n] = next(r.detail for r in res if r.status == NOT_RUN)
            results += res
        else:
            results += run_source(n, None, plan[n], f"{n} unreachable: {why[n]}")
    return NetcheckReport(names, results, why, time.monotonic() - started)
