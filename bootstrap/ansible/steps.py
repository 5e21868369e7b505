"""One step of a playbook, run by the action plugin on the controller: node X of the phase tree for
this host, through the same engine as the SSH transport.

It builds the same plan as `init -i` from the same inventory (each Ansible task is a process of its
own), wraps Ansible's connection to the host in a Target (AnsibleTarget), and runs:

- `PHASE` (`kernel`, `certs`, `etcd`...): the phase's work on this host (`run_host_phases`);
- `PHASE:before` / `PHASE:after`: the phase's cluster step (the shared CAs before certs, etcd health
  after etcd, who holds the VIP after loadbalancer, the bootstrap token before join-workers), on
  the host the role runs it on; what the SSH transport learns across hosts comes here as facts;
- `validate/netcheck:facts`, `validate/netcheck`, `validate/nodes`, and `reset`.

The steps the roles call are checked against the tree by tests/unit/test_phase_tree.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase, Tree
from bootstrap.engine.result import HostReport, PhaseResult, Status
from bootstrap.engine.runner import SKIPPED, RunState, has_host_work, run_host_phases
from bootstrap.errors import KbootstrapError, UsageError
from bootstrap.join.tokens import parse_token
from bootstrap.phases import certs, cluster_ready, etcd, join, loadbalancer, show_join, worker_join
from bootstrap.phases.bootstrap_token import JoinToken, join_token
from bootstrap.phases.reset import RESET, ResetOptions
from bootstrap.phases.tree import INIT, JOIN
from bootstrap.spec.inventory import InventoryHost, ansible_bool
from bootstrap.transport.base import Target
from bootstrap.transport.cache import ReadAheadTarget
from bootstrap.transport.local import LocalTarget
from bootstrap.validate.netcheck import FACTS_SCRIPT, SCRIPT_TIMEOUT, parse_results, plan_for_source, probe_script
from bootstrap.validate.nodes import ERROR, FAIL, PASS, SKIP, infra_host, node_checks, run_checks
from bootstrap.workflow.init import ADMIN_NOTE, write_admin_kubeconfig
from bootstrap.workflow.join import join_state
from bootstrap.workflow.options import Events, FleetOptions
from bootstrap.workflow.session import FleetPlan, plan_fleet, run_state

HOOK_STEPS = ("certs:before", "etcd:after", "loadbalancer:after", "join-workers:before")
OTHER_STEPS = ("validate/netcheck:facts", "validate/netcheck", "validate/nodes", "reset")
# Steps that ship bundle content to nodes verify the bundle's checksums on the controller; the others
# only read its manifest (hashing ~100 files in every task on every host was a fifth of a rerun).
BUNDLE_STEPS = ("container-runtime", "binaries", "loadbalancer")
SPEC_PARAMS = (
    "control_plane_endpoint",
    "apiserver_bind_port",
    "apiserver_cert_extra_sans",
    "pod_network_cidr",
    "service_cidr",
    "service_dns_domain",
    "kubernetes_version",
    "cert_dir",
    "skip_phases",
    "cri_socket",
    "image_repository",
    "ignore_preflight_errors",
    "encryption_algorithm",
    "etcd_mode",
    "hardening",
    "config",
)


@dataclass(frozen=True)
class StepInput:
    """What a step needs, from the task's args and variables."""

    inventory: str  # the Kubespray inventory file (hosts.yaml / INI) the spec is built from
    host: str  # inventory_hostname
    params: Mapping[str, Any] = field(default_factory=dict)  # spec flags, as `init` takes them
    pki_dir: str | None = None  # the control machine's copy of the shared CAs
    bundle: str | None = None
    skip: tuple[str, ...] = ()  # kbootstrap_skip_phases as Ansible sees it (inventory or -e)
    check_mode: bool = False
    play_hosts: tuple[str, ...] = ()  # every host of the play (reset: the whole etcd cluster goes?)
    shared_sources: Mapping[str, str] = field(default_factory=dict)  # control plane -> where its CAs came from
    source: str | None = None  # scale.yml: the running control plane this (delegated) task talks to
    join_token: str | None = None  # the token the join-workers:before step found or registered
    join_token_note: str = ""
    join: bool = False  # scale.yml: the play's hosts join a running cluster (the join tree)
    netcheck_facts: Mapping[str, str] = field(default_factory=dict)  # host -> its netcheck facts script output
    netcheck_failures: tuple[str, ...] = ()  # this host's failed probes (set by the netcheck step)
    vip_held: Mapping[str, bool] = field(default_factory=dict)  # control plane -> holds the VIP (loadbalancer step)


def step_input(task_vars: Mapping[str, Any], args: Mapping[str, Any], check_mode: bool) -> StepInput:
    """StepInput from an Ansible task's variables; a missing inventory is a one-line error."""
    inventory = args.get("inventory") or task_vars.get("kbootstrap_inventory") or task_vars.get("inventory_file")
    if not inventory:
        raise UsageError(
            "no inventory file for kbootstrap",
            hint="run with -i inventories/NAME/hosts.yaml or set kbootstrap_inventory",
        )
    params = task_vars.get("kbootstrap_params") or {}
    if not isinstance(params, Mapping):
        raise UsageError("kbootstrap_params must be a mapping of init flags (pod_network_cidr: ...)")
    skip = task_vars.get("kbootstrap_skip_phases") or []
    if isinstance(skip, str):
        skip = [s for s in skip.split(",") if s.strip()]
    hostvars = task_vars.get("hostvars") or {}
    cps = (task_vars.get("groups") or {}).get("kube_control_plane") or []
    play = {str(h) for h in task_vars.get("ansible_play_hosts_all") or ()}

    def facts(name: str) -> dict[str, Any]:
        # Only hosts of this play set them in this run: with a fact cache, others may hold old ones.
        return {str(h): v[name] for h, v in hostvars.items() if str(h) in play and isinstance(v, Mapping) and name in v}

    return StepInput(
        inventory=str(inventory),
        host=str(task_vars.get("inventory_hostname", "")),
        params=dict(params),
        pki_dir=_opt(args.get("pki_dir") or task_vars.get("kbootstrap_pki_dir")),
        bundle=_opt(task_vars.get("kbootstrap_bundle_override") or task_vars.get("kbootstrap_bundle")),
        skip=tuple(str(s) for s in skip),
        check_mode=check_mode,
        play_hosts=tuple(str(h) for h in task_vars.get("ansible_play_hosts_all") or ()),
        source=_opt(args.get("source")),
        join_token=_opt(task_vars.get("kbootstrap_join_token") or task_vars.get("kbootstrap_token")),
        join_token_note=str(task_vars.get("kbootstrap_join_token_note") or ""),
        join=ansible_bool(task_vars.get("kbootstrap_join")),
        netcheck_facts={h: str(v) for h, v in facts("kbootstrap_netcheck_facts").items()},
        netcheck_failures=tuple(str(f) for f in task_vars.get("kbootstrap_netcheck_failures") or ()),
        vip_held={h: ansible_bool(v) for h, v in facts("kbootstrap_vip_held").items()},
        # Only the wording of the certs phase's detail: set as a fact by the certs:before step.
        shared_sources={
            str(h): str(hostvars[h]["kbootstrap_shared_pki_source"])
            for h in cps
            if h in hostvars and "kbootstrap_shared_pki_source" in hostvars[h]
        },
    )


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "", ()) else None


@dataclass
class Step:
    """The fleet as `init -i` (or `join -i`) sees it, rebuilt in each step, and this host's run."""

    inp: StepInput
    plan: FleetPlan
    tree: Tree
    run: RunState
    host: InventoryHost

    @property
    def ctx(self) -> RunContext:
        return self.run.contexts[self.host.name]


def load(inp: StepInput, step: str, target: Target) -> Step:
    opts = FleetOptions(
        inventory=inp.inventory,
        flags={k: v for k, v in inp.params.items() if k in SPEC_PARAMS},
        dry_run=inp.check_mode,
        pki_dir=inp.pki_dir,
        bundle=inp.bundle,
        skip=inp.skip,
    )
    tree = JOIN if inp.join else INIT
    plan = plan_fleet(opts, tree, verify_bundle=step in BUNDLE_STEPS)
    host = plan.inv.host(inp.host)
    first = plan.inv.control_planes()[0].name
    join_info = None
    if inp.join:
        join_info = join_state(plan.inv, list(inp.play_hosts) or [inp.host])
        join_info.etcd_from_node = True
        first = inp.source or join_info.source_cp
    run = run_state(plan, [host.name], {host.name: ReadAheadTarget(target)}, opts, Events(), first_control_plane=first)
    run.put_slot(certs.SharedPKI(store=Path(plan.pki_dir)))
    if join_info is not None:
        run.put_slot(join_info)
    if inp.join_token:
        run.put_slot(JoinToken(token=parse_token(inp.join_token), note=inp.join_token_note))
    return Step(inp, plan, tree, run, host)


def run_step(step: str, inp: StepInput, target: Target) -> dict[str, Any]:
    """Run one step for one host; the Ansible result (changed/failed/msg) with our report in
    `kbootstrap`. Typed errors become `failed` with one line; connection errors propagate (Ansible
    reports the host unreachable)."""
    try:
        s = load(inp, step, target)
        tops = [p.name for p in s.tree]
        if step not in (*tops, *HOOK_STEPS, *OTHER_STEPS):
            valid = ", ".join([*tops, *HOOK_STEPS, *OTHER_STEPS])
            return _failed(inp.host, step, f"unknown kbootstrap step {step!r} (valid: {valid})")
        handlers = {
            "certs:before": _shared_pki,
            "etcd:after": _etcd_health,
            "loadbalancer:after": _vip_report,
            "join-workers:before": _join_token,
            "cluster-ready": _cluster_ready,
            "validate/netcheck:facts": _netcheck_facts,
            "validate/netcheck": _netcheck,
            "validate/nodes": _validate,
            "reset": _reset,
        }
        if step in handlers:
            return handlers[step](s)
        return _phase(s, s.tree.find(step))
    except KbootstrapError as exc:
        return _failed(inp.host, step, exc.one_line())


def _failed(host: str, step: str, msg: str) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, "kbootstrap": {"host": host, "step": step, "phases": []}}


def _result(host: str, step: str, phases: list[PhaseResult], *, merge: bool = False, **extra: Any) -> dict[str, Any]:
    report = HostReport(host, phases)
    data = report.to_json()
    error = data["error"]
    msg = error or ", ".join(
        f"{p.name}: {'skipped (' + p.skipped_reason + ')' if p.skipped_reason else f'{p.changed} changed'}"
        for p in phases
    )
    return {
        "failed": bool(error),
        "changed": report.changed > 0,
        "msg": msg,
        "kbootstrap": {"host": host, "step": step, "phases": data["phases"], "merge": merge},
        **extra,
    }


def _not_applicable(host: str, step: str, why: str) -> dict[str, Any]:
    # Ansible shows "skipping"; the SSH fleet records nothing for hosts a phase does not apply to.
    return {"skipped": True, "changed": False, "msg": why, "kbootstrap": {"host": host, "step": step, "phases": []}}


def _load_shared(s: Step) -> None:
    """The shared CAs the certs:before step left in the control machine's store."""
    shared = s.run.slot(certs.SharedPKI)
    assert shared.store is not None
    local = LocalTarget(shared.store, name="control-machine")
    cert_dir = s.plan.cluster.cert_dir.rstrip("/")
    found = local.read_many([f"{cert_dir}/{rel}" for rel in certs.SHARED_CA_FILES])
    shared.files = {rel: st.content for rel in certs.SHARED_CA_FILES if (st := found[f"{cert_dir}/{rel}"])}
    shared.source = s.inp.shared_sources.get(s.run.first_control_plane) or f"control machine ({shared.store})"


def _phase(s: Step, phase: Phase) -> dict[str, Any]:
    host, step = s.host, phase.name
    if not phase.hosts(host, s.run):
        roles = ", ".join(sorted(host.roles))
        return _not_applicable(host.name, step, f"{step} does not apply to {host.name} ({roles})")
    if step in s.plan.skip:
        reason = s.plan.reasons.get(step, SKIPPED)
        return _result(host.name, step, [PhaseResult(step, skipped_reason=reason)])
    if step in ("certs", "kubeconfig", worker_join.PHASE.name):
        _load_shared(s)
    if step == "kubeconfig" and s.inp.check_mode and "certs" not in s.plan.skip:
        # A dry run writes nothing: over SSH the kubeconfig phase finds what certs would have written
        # in the host's overlay. Each Ansible task is a process of its own, so the certs phase is
        # replayed here into this context's overlay, its report discarded.
        run_host_phases(s.ctx, (s.tree.find("certs"),), s.plan.skip)
    report = run_host_phases(s.ctx, (phase,), s.plan.skip, reasons=s.plan.reasons)
    result = _result(host.name, step, report.phases)
    join_info = s.run.slot(join.JoinState) if s.inp.join else None
    if join_info is not None and join_info.etcd_source:  # `join -i` reports the member it joined through
        result["kbootstrap"]["etcd_source"] = join_info.etcd_source
    if step == show_join.PHASE.name and not result["failed"]:
        result["kbootstrap"]["notes"] = closing_notes(s)
    if step == "loadbalancer" and not result["failed"] and host.is_control_plane and not _vip_skipped(s):
        # Whether this control plane holds the VIP, for the loadbalancer:after step: in this task's
        # result, not a task of its own (a task costs every host a worker and a spec load).
        endpoint = s.ctx.spec.api_endpoint
        assert endpoint is not None
        result["ansible_facts"] = {"kbootstrap_vip_held": loadbalancer.holds_vip(s.ctx.target, endpoint)}
    return result


def closing_notes(s: Step) -> dict[str, Any]:
    """What `init -i` ends with, from the first control plane's task: the join text (secrets
    withheld) and, as Kubespray's kubeconfig_localhost, the admin kubeconfig written on the control
    machine by this (controller-side) task, so the key never travels in a task's result."""
    notes: dict[str, Any] = {}
    if show_join.JOIN_NOTE in s.run.result.notes:
        notes[show_join.JOIN_NOTE] = s.run.result.notes[show_join.JOIN_NOTE]
    if not s.inp.check_mode:
        notes[ADMIN_NOTE] = write_admin_kubeconfig(s.plan, s.run)
    return notes


def _shared_pki(s: Step) -> dict[str, Any]:
    """Once per run, on the first control plane (the roles run it on every control plane; the others
    skip): the shared CAs made on the control machine, or read back from the cluster. scale.yml runs
    it delegated to a running control plane (`source`)."""
    inp = s.inp
    if inp.source is None and inp.host != s.run.first_control_plane:
        return _not_applicable(inp.host, "certs:before", f"the shared CAs are prepared on {s.run.first_control_plane}")
    if "certs" in s.plan.skip:
        return _not_applicable(inp.host, "certs:before", "certs is skipped")
    source = inp.source or s.run.first_control_plane
    s.run.targets[source] = s.ctx.target  # delegated (scale.yml): this task's connection is the source's
    s.run.first_control_plane = source
    certs.prepare_shared(s.run, [inp.host])
    shared = s.run.slot(certs.SharedPKI)
    return {
        "changed": False,
        "msg": f"shared CAs: {shared.source}",
        "ansible_facts": {"kbootstrap_shared_pki_source": shared.source},
        "kbootstrap": {"host": inp.host, "step": "certs:before", "phases": []},
    }


def _etcd_health(s: Step) -> dict[str, Any]:
    host = s.host
    if not etcd.PHASE.hosts(host, s.run):
        return _not_applicable(host.name, "etcd:after", f"{host.name} is not an etcd member")
    if "etcd" in s.plan.skip or s.inp.check_mode:
        return _not_applicable(host.name, "etcd:after", "check mode" if s.inp.check_mode else "etcd is skipped")
    # The health line lands in the etcd phase's report, as over SSH (merged into the last phase).
    s.run.result.hosts[host.name].phases.append(PhaseResult("etcd"))
    etcd.check_health(s.run, [host.name])
    report = s.run.result.hosts[host.name]
    if report.error:
        return _failed(host.name, "etcd:after", report.error)
    return _result(host.name, "etcd:after", report.phases, merge=True)


def _vip_skipped(s: Step) -> str:
    ep = s.plan.cluster.api_endpoint
    if ep is None or not ep.uses_haproxy_on_control_planes:
        return "no keepalived virtual IP in this cluster"
    if "loadbalancer" in s.plan.skip or s.inp.check_mode:
        return "check mode" if s.inp.check_mode else "loadbalancer is skipped"
    return ""


def _vip_report(s: Step) -> dict[str, Any]:
    """Once: who holds the VIP, as the SSH fleet reports it after the phase (on the first control plane
    checked); Ansible shows a warning when more than one does."""
    checked = [h.name for h in s.plan.inv.control_planes() if h.name in s.inp.vip_held]
    if why := _vip_skipped(s) or ("" if checked else "no control plane was checked"):
        return _not_applicable(s.inp.host, "loadbalancer:after", why)
    endpoint = s.plan.cluster.api_endpoint
    assert endpoint is not None
    change = loadbalancer.vip_change("loadbalancer", endpoint, [n for n in checked if s.inp.vip_held[n]])
    out = _result(checked[0], "loadbalancer:after", [PhaseResult("loadbalancer", changes=[change])], merge=True)
    out["msg"] = f"{change.item} {change.detail}"
    if change.status == Status.WARNING:
        out["warnings"] = [out["msg"]]
    return out


def _reset(s: Step) -> dict[str, Any]:
    """kubeadm reset on the host. When the play resets every etcd member the cluster goes as a whole:
    members do not remove each other one by one (that would lose quorum half-way)."""
    members = {h.name for h in s.plan.inv.hosts if h.is_etcd}
    whole = bool(s.inp.play_hosts) and members <= set(s.inp.play_hosts)
    s.run.put_slot(ResetOptions(etcd_member_removed=whole))
    report = run_host_phases(s.ctx, RESET, set())
    return _result(s.host.name, "reset", report.phases)


def _join_token(s: Step) -> dict[str, Any]:
    """Once, delegated to a running control plane, when a worker still has to join: the bootstrap
    token the workers use (found or made through its API, as `init -i` / `join -i` do), handed to
    their steps as a fact (the task is no_log: the secret is never shown)."""
    step = "join-workers:before"
    if worker_join.PHASE.name in s.plan.skip:
        return _not_applicable(s.inp.host, step, f"{worker_join.PHASE.name} is skipped")
    hosts = {h.name: h for h in s.plan.inv.hosts}
    if not any(h in hosts and hosts[h].is_worker and not hosts[h].is_control_plane for h in s.inp.play_hosts):
        return _not_applicable(s.inp.host, step, "no worker in this play")
    source = s.inp.source or s.run.first_control_plane
    s.run.targets[source] = s.ctx.target  # delegated to the source: this is its connection
    s.run.first_control_plane = source
    token = join_token(s.run)
    note = s.run.slot(JoinToken).note
    return {
        "changed": False,
        "msg": note,
        "ansible_facts": {"kbootstrap_join_token": str(token), "kbootstrap_join_token_note": note},
        "kbootstrap": {"host": s.inp.host, "step": "join-workers:before", "phases": []},
    }


def _cluster_ready(s: Step) -> dict[str, Any]:
    """init: on the first control plane, as the phase. scale.yml: once, delegated to the running
    control plane the play joins through (a new worker holds no admin credentials), waiting for
    every node of the play."""
    if s.inp.source is None:
        return _phase(s, cluster_ready.PHASE)
    step = cluster_ready.PHASE.name
    s.run.targets[s.inp.source] = s.ctx.target  # delegated to the source: this is its connection
    s.run.first_control_plane = s.inp.source
    nodes = [s.plan.specs[h].node.name for h in s.inp.play_hosts if h in s.plan.specs]
    play = replace(cluster_ready.PHASE, run=lambda ctx: cluster_ready.wait_ready(ctx, nodes, []))
    report = run_host_phases(s.ctx, (play,), s.plan.skip, reasons=s.plan.reasons)
    return _result(s.host.name, step, report.phases)


def _netcheck_skipped(s: Step) -> str:
    if s.inp.check_mode:
        return "check mode"
    return "skipped by --skip-phases" if s.plan.skip & {"validate", "validate/netcheck"} else ""


def _netcheck_facts(s: Step) -> dict[str, Any]:
    """netcheck's first round on this node: what runs here (the next step's probes depend on it)."""
    step = "validate/netcheck:facts"
    if why := _netcheck_skipped(s):
        return _not_applicable(s.host.name, step, why)
    result = s.ctx.target.run(FACTS_SCRIPT, timeout=SCRIPT_TIMEOUT)
    if not result.ok:  # no facts: the node is reported as not checked, with this reason
        return {"changed": False, "msg": f"facts script exited {result.exit_code}: {result.stderr.strip()[-200:]}",
                "kbootstrap": {"host": s.host.name, "step": step, "phases": []}}
    return {
        "changed": False,
        "msg": "netcheck facts gathered",
        "ansible_facts": {"kbootstrap_netcheck_facts": result.stdout},
        "kbootstrap": {"host": s.host.name, "step": step, "phases": [], "netcheck_facts": result.stdout},
    }


def _netcheck(s: Step) -> dict[str, Any]:
    """This node's probes (names, pings, ports of every peer), as `kbootstrap netcheck` runs them from
    it. Failures do not fail the task (the node checks still run); the validate step reports them."""
    step = "validate/netcheck"
    if why := _netcheck_skipped(s):
        return _not_applicable(s.host.name, step, why)
    probes = plan_for_source(s.plan.inv, s.plan.cluster, s.inp.netcheck_facts, s.host.name)
    result = s.ctx.target.run(probe_script(probes), timeout=SCRIPT_TIMEOUT)
    failed = [f"{r.probe.target} {r.probe.label}: {r.detail}"
              for r in parse_results(s.host.name, probes, result.stdout) if r.failed]
    return {
        "changed": False,
        "msg": f"{len(failed)} probe(s) failed: " + "; ".join(failed[:5]) if failed else f"{len(probes)} probes",
        "ansible_facts": {"kbootstrap_netcheck_failures": failed},
        "kbootstrap": {"host": s.host.name, "step": step, "phases": [], "netcheck_output": result.stdout},
    }


def _validate(s: Step) -> dict[str, Any]:
    """`kbootstrap validate`'s node checks (testinfra over this connection); fails on any failure,
    its own or a probe of this node's netcheck."""
    step = "validate/nodes"
    host = s.host
    if s.inp.check_mode or "validate" in s.plan.skip:
        return _not_applicable(host.name, step, "check mode" if s.inp.check_mode else "skipped by --skip-phases")
    net = [f"netcheck {f}" for f in s.inp.netcheck_failures]
    if "validate/nodes" in s.plan.skip:
        # Still a validation result, not a failed host, as over SSH.
        return {"changed": False, "failed": bool(net), "msg": "; ".join(net[:5]) or "node checks skipped",
                "kbootstrap_validate": {"node": host.name, "counts": {}, "checks": []},
                "kbootstrap": {"host": host.name, "step": step, "phases": []}}
    spec = s.ctx.spec
    first_cp = s.plan.inv.control_planes()[0].name
    checks = node_checks(host, spec, s.plan.bundle, s.plan.skip, init_node=host.name == first_cp)
    results = run_checks(infra_host(s.ctx.target), checks, spec)
    bad = [r for r in results if r.status in (FAIL, ERROR)]
    counts = {st: sum(1 for r in results if r.status == st) for st in (PASS, FAIL, SKIP, ERROR)}
    problems = [*(f"{r.check.id}: {r.message}" for r in bad), *net]
    return {
        "changed": False,
        "failed": bool(problems),
        "msg": f"{len(problems)} check(s) failed: " + "; ".join(problems[:5])
        if problems
        else f"{counts[PASS]} checks passed, {counts[SKIP]} skipped",
        "kbootstrap_validate": {"node": host.name, "counts": counts, "checks": [r.to_json() for r in results]},
        "kbootstrap": {"host": host.name, "step": step, "phases": []},
    }


def tree_steps(tree: Tree) -> list[str]:
    """The steps a playbook must run for a tree, in order (what the roles are checked against)."""
    out: list[str] = []
    for phase in tree:
        if phase.name == "validate":
            out += ["validate/netcheck:facts", "validate/netcheck", "validate/nodes"]
            continue
        if phase.before is not None and f"{phase.name}:before" in HOOK_STEPS:
            out.append(f"{phase.name}:before")
        if has_host_work(phase):
            out.append(phase.name)
        if phase.after is not None and f"{phase.name}:after" in HOOK_STEPS:
            out.append(f"{phase.name}:after")
    return out
