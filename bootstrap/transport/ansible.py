"""The Ansible transport: `playbooks/` driven by ansible-runner, with our phases doing the work.

Two halves, one source of truth:

- Inside Ansible (controller side, `playbooks/action_plugins/kbootstrap_phase.py`): `run_step` builds
  the same ClusterSpec as `init -i` from the same inventory, wraps Ansible's connection to the host in
  a `Target` (`AnsibleTarget`), and runs ONE fleet phase through the same phase code as the SSH
  transport. Certificates and rendered files therefore come from the same Python; there is no
  second template set.
- Around Ansible (`run_fleet_init_ansible`, `run_fleet_reset_ansible`, `run_fleet_join_ansible`): run
  a playbook with ansible-runner and turn its events into our per-host reports (`EventCollector`),
  so `-o json` has the same shape as over SSH.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bootstrap.errors import KbootstrapError, RequirementError, TransportError, UsageError
from bootstrap.spec.inventory import ansible_bool
from bootstrap.transport.base import CommandResult, FileState
from bootstrap.workflow.report import Change, HostReport, PhaseResult, Status

# --------------------------------------------------------------------------------------------------
# A Target over an Ansible connection. `execute(cmd, stdin)` is the action plugin's
# _low_level_execute_command (become and the connection plugin handled by Ansible).

Execute = Callable[[str, bytes | None], tuple[int, str, str]]
BatchFile = tuple[str, bytes, int, str | None]


class AnsibleTarget:
    """One host through Ansible's connection: every operation is one `bash -s` with the script on
    stdin (no temp files, no module shipping). Binary replies (file reads) come back base64-encoded:
    Ansible hands command output over as text."""

    live = True

    def __init__(self, name: str, execute: Execute) -> None:
        self.name = name
        self._execute = execute

    def _bash(self, script: bytes, timeout: float | None = None) -> tuple[int, str, str]:
        cmd = "bash -s" if timeout is None else f"timeout {max(1, int(timeout))} bash -s"
        return self._execute(cmd, script)

    def _checked(self, script: bytes, what: str) -> str:
        code, out, err = self._bash(script)
        if code != 0:
            lines = err.strip().splitlines()
            raise TransportError(f"{what} on {self.name} failed: {lines[-1] if lines else f'exit code {code}'}")
        return out

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        code, out, err = self._bash(script.encode(), timeout)
        return CommandResult(code, out, err)

    def read(self, path: str) -> FileState | None:
        return self.read_many([path])[path]

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        from bootstrap.transport.ssh import parse_read_batch, read_batch

        paths = list(dict.fromkeys(paths))
        if not paths:
            return {}
        # The same tar reader as the SSH transport, base64 on the way back.
        script = "kb_read() {\n" + read_batch(paths) + "}\nkb_read | base64 -w0\nexit ${PIPESTATUS[0]}\n"
        out = self._checked(script.encode(), f"reading {len(paths)} file(s)")
        try:
            return parse_read_batch(paths, base64.b64decode(out.strip()))
        except (binascii.Error, ValueError, OSError) as exc:
            raise TransportError(f"reading files on {self.name}: unreadable reply ({exc})") from None

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        self.write_many([(path, data, mode, owner)])

    def write_many(self, files: Sequence[BatchFile]) -> None:
        from bootstrap.transport.ssh import write_batch

        if files:
            self._checked(write_batch(files), f"writing {len(files)} file(s)")

    def mkdir(self, path: str, mode: int) -> None:
        q = shlex.quote(path)
        self._checked(
            f"[ -d {q} ] || {{ umask 022 && mkdir -p -- {q} && chmod {mode:o} -- {q}; }}\n".encode(),
            f"creating directory {path}",
        )

    def chmod(self, path: str, mode: int) -> None:
        self._checked(f"chmod {mode:o} -- {shlex.quote(path)}\n".encode(), f"chmod {path}")

    def remove(self, path: str) -> None:
        if path.rstrip("/") == "":
            raise ValueError("refusing to remove /")
        self._checked(f"rm -rf -- {shlex.quote(path)}\n".encode(), f"removing {path}")

    def list_dir(self, path: str) -> list[str] | None:
        q = shlex.quote(path)
        out = self._checked(f"[ -d {q} ] || {{ echo -; exit 0; }}; cd -- {q} && ls -A1\n".encode(), f"listing {path}")
        if out.strip() == "-":
            return None
        return sorted(x for x in out.split("\n") if x)


# --------------------------------------------------------------------------------------------------
# One step of a playbook, run by the action plugin on the controller.

# Steps the roles call: every fleet phase by its name (`kernel`, `certs`, `loadbalancer`...), and the
# cluster steps the SSH fleet runs around phases (shared CAs before certs, etcd health after etcd),
# reset and validate.
SPECIAL_STEPS = (
    "shared-pki", "etcd-health", "vip-report", "reset", "netcheck-facts", "netcheck", "validate",
    "join-token", "tls-bootstrap",
)
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
    join_token: str | None = None  # scale.yml: the token join-token registered (a fact), or kbootstrap_token
    join_token_note: str = ""
    join: bool = False  # scale.yml: the play's hosts join a running cluster (`join -i`'s phase list)
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
        # Only the wording of the certs phase's detail: set as a fact by the shared-pki step.
        shared_sources={
            str(h): str(hostvars[h]["kbootstrap_shared_pki_source"])
            for h in cps
            if h in hostvars and "kbootstrap_shared_pki_source" in hostvars[h]
        },
    )


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass
class _Run:
    """The fleet as `init -i` sees it, rebuilt in each step (each Ansible task is its own process)."""

    inv: Any
    cluster: Any
    first_cp: str
    shared: Any
    phases: list[Any]
    skip: set[str]
    bundle: Any
    members: Any
    job: Any = None  # scale.yml: the FleetJoin whose phase list the steps run


# Steps whose phase signs with the cluster CA that the certs step writes (see _phase: check mode).
SIGNS_WITH_CLUSTER_CA = ("kubeconfig",)

# Steps that ship bundle content to nodes verify the bundle's checksums on the controller; the others
# only read its manifest (hashing ~100 files in every task on every host was a fifth of a rerun).
BUNDLE_STEPS = ("container-runtime", "binaries", "loadbalancer")


def _bundle(inv: Any, override: str | None, verify: bool) -> Any:
    from bootstrap.artifacts.bundle import load_bundle
    from bootstrap.workflow.cluster import bundle_for

    if verify:
        return bundle_for(inv, override)
    path = override or inv.vars.get("kbootstrap_bundle")
    if not path:
        return None
    p = Path(str(path))
    if not p.is_absolute() and (inv.path.parent / p).exists():  # as bundle_for resolves it
        p = inv.path.parent / p
    return load_bundle(p, verify=False)


def _load(inp: StepInput, step: str = "") -> _Run:
    from bootstrap.spec.inventory import load_inventory
    from bootstrap.validate.fleet import VALIDATE_PHASES
    from bootstrap.workflow.cluster import (
        SharedPKI,
        etcd_members,
        fleet_cluster_spec,
        fleet_phase_paths,
        fleet_phases,
    )

    inv = load_inventory(inp.inventory)
    if not inv.control_planes():
        raise UsageError(f"{inv.path}: no host in kube_control_plane")
    first_cp = inv.control_planes()[0].name
    cluster = fleet_cluster_spec({k: v for k, v in inp.params.items() if k in SPEC_PARAMS}, inv)
    pki_dir = Path(inp.pki_dir or Path("pki") / inv.path.parent.name)
    shared = SharedPKI(pki_dir)
    job = _fleet_join(inv, cluster, shared, inp) if inp.join else None
    phases = job.phases() if job is not None else fleet_phases(cluster, shared, first_cp, inp.check_mode)
    known = set(fleet_phase_paths(phases)) | set(VALIDATE_PHASES) | {"tls-bootstrap"}
    skip: set[str] = set()
    for name in [*inp.skip, *cluster.skip_phases, *(inv.vars.get("kbootstrap_skip_phases") or [])]:
        name = name.strip().removesuffix("/all")
        if name not in known:
            raise UsageError(
                f"kbootstrap_skip_phases: unknown phase {name!r}", hint="valid: " + ", ".join(sorted(known))
            )
        skip.add(name)
    bundle = _bundle(inv, inp.bundle, verify=step in BUNDLE_STEPS)
    return _Run(inv, cluster, first_cp, shared, phases, skip, bundle, etcd_members(inv), job)


def run_step(step: str, inp: StepInput, target: Any) -> dict[str, Any]:
    """Run one step for one host; the Ansible result (changed/failed/msg) with our report in
    `kbootstrap`. Typed errors become `failed` with one line; connection errors propagate (Ansible
    reports the host unreachable)."""
    try:
        run = _load(inp, step)
        names = [fp.phase.name for fp in run.phases]
        if step not in (*names, *SPECIAL_STEPS):
            valid = ", ".join([*names, *SPECIAL_STEPS])
            return _failed(inp.host, step, f"unknown kbootstrap step {step!r} (valid: {valid})")
        host = run.inv.host(inp.host)
        if step == "shared-pki":
            return _shared_pki(run, inp, target)
        if step == "etcd-health":
            return _etcd_health(run, inp, host, target)
        if step == "vip-report":
            return _vip_report(run, inp)
        if step == "reset":
            return _reset(run, inp, host, target)
        if step == "netcheck-facts":
            return _netcheck_facts(run, inp, host, target)
        if step == "netcheck":
            return _netcheck(run, inp, host, target)
        if step == "validate":
            return _validate(run, inp, host, target)
        if step == "join-token":
            return _join_token(run, inp, target)
        if step == "tls-bootstrap":
            return _tls_bootstrap(run, inp, host, target)
        return _phase(run, inp, host, target, step)
    except KbootstrapError as exc:
        return _failed(inp.host, step, exc.one_line())


def _failed(host: str, step: str, msg: str) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, "kbootstrap": {"host": host, "step": step, "phases": []}}


def _result(host: str, step: str, phases: list[PhaseResult], *, merge: bool = False, **extra: Any) -> dict[str, Any]:
    report = HostReport(host, phases)
    data = report.to_json()
    error = data["error"]
    changed = report.changed
    msg = error or ", ".join(
        f"{p.name}: {'skipped (' + p.skipped_reason + ')' if p.skipped_reason else f'{p.changed} changed'}"
        for p in phases
    )
    return {
        "failed": bool(error),
        "changed": changed > 0,
        "msg": msg,
        "kbootstrap": {"host": host, "step": step, "phases": data["phases"], "merge": merge},
        **extra,
    }


def _not_applicable(host: str, step: str, why: str) -> dict[str, Any]:
    # Ansible shows "skipping"; the SSH fleet records nothing for hosts a phase does not apply to.
    return {"skipped": True, "changed": False, "msg": why, "kbootstrap": {"host": host, "step": step, "phases": []}}


def _context(run: _Run, inp: StepInput, host: Any, target: Any) -> Any:
    from bootstrap.transport.cache import ReadAheadTarget
    from bootstrap.workflow.cluster import node_spec
    from bootstrap.workflow.context import RunContext

    return RunContext(
        node_spec(run.cluster, host, run.members),
        ReadAheadTarget(target),
        dry_run=inp.check_mode,
        bundle=run.bundle,
        roles=host.roles,
    )


def _load_shared(run: _Run, inp: StepInput) -> None:
    from bootstrap.transport.local import LocalTarget
    from bootstrap.workflow.cluster import SHARED_CA_FILES

    local = LocalTarget(run.shared.store, name="control-machine")
    cert_dir = run.cluster.cert_dir.rstrip("/")
    for rel in SHARED_CA_FILES:
        state = local.read(f"{cert_dir}/{rel}")
        if state is not None:
            run.shared.files[rel] = state.content
    run.shared.source = inp.shared_sources.get(run.first_cp) or f"control machine ({run.shared.store})"


def _phase(run: _Run, inp: StepInput, host: Any, target: Any, step: str) -> dict[str, Any]:
    from bootstrap.workflow.runner import run_phases

    fp = next(fp for fp in run.phases if fp.phase.name == step)
    if not fp.applies_to(host):
        roles = ", ".join(sorted(host.roles))
        return _not_applicable(host.name, step, f"{step} does not apply to {host.name} ({roles})")
    if step in run.skip:
        return _result(host.name, step, [PhaseResult(step, skipped_reason="skipped by --skip-phases")])
    ctx = _context(run, inp, host, target)
    if step == "certs":
        _load_shared(run, inp)
    elif step in SIGNS_WITH_CLUSTER_CA and inp.check_mode and "certs" not in run.skip:
        # A dry run writes nothing: over SSH the kubeconfig phase finds what certs would have written
        # in the run's in-memory overlay (pki.store). Each Ansible task is a process of its own, so
        # the certs phase is replayed here into the same overlay, its report discarded.
        _load_shared(run, inp)
        certs = next(f for f in run.phases if f.phase.name == "certs")
        run_phases(ctx, (certs.phase,), run.skip)
    report = run_phases(ctx, (fp.phase,), run.skip)
    result = _result(host.name, step, report.phases)
    if run.job is not None and run.job.etcd_source:  # `join -i` reports the member it joined through
        result["kbootstrap"]["etcd_source"] = run.job.etcd_source
    if step == "loadbalancer" and not result["failed"] and host.is_control_plane and not _vip_skipped(run, inp):
        # Whether this control plane holds the VIP, for the vip-report step: in this task's result,
        # not a task of its own (a task costs every host a worker and a spec load).
        from bootstrap.phases.loadbalancer import holds_vip

        result["ansible_facts"] = {"kbootstrap_vip_held": holds_vip(target, run.cluster.api_endpoint)}
    return result


def _shared_pki(run: _Run, inp: StepInput, target: Any) -> dict[str, Any]:
    """Once per run, on the first control plane (the roles run it on every control plane; the others
    skip): the shared CAs made on the control machine, or read back from the cluster."""
    from bootstrap.workflow.cluster import prepare_shared_pki
    from bootstrap.workflow.fleet import FleetRun

    # cluster.yml: on the first control plane. scale.yml: delegated to a running control plane
    # (`source`), once: the CAs are read back from the cluster, as `join -i` does.
    source = inp.source or run.first_cp
    if inp.source is None and inp.host != run.first_cp:
        return _not_applicable(inp.host, "shared-pki", f"the shared CAs are prepared on {run.first_cp}")
    if "certs" in run.skip:
        return _not_applicable(inp.host, "shared-pki", "certs is skipped")
    fleet = FleetRun({}, {source: target}, {}, {})
    prepare_shared_pki(fleet, run.cluster, run.shared, source, inp.check_mode)
    return {
        "changed": False,
        "msg": f"shared CAs: {run.shared.source}",
        "ansible_facts": {"kbootstrap_shared_pki_source": run.shared.source},
        "kbootstrap": {"host": inp.host, "step": "shared-pki", "phases": []},
    }


def _etcd_health(run: _Run, inp: StepInput, host: Any, target: Any) -> dict[str, Any]:
    from bootstrap.workflow.cluster import wait_etcd_healthy
    from bootstrap.workflow.fleet import FleetRun

    if not host.is_etcd:
        return _not_applicable(host.name, "etcd-health", f"{host.name} is not an etcd member")
    if "etcd" in run.skip or inp.check_mode:
        return _not_applicable(host.name, "etcd-health", "etcd is skipped" if not inp.check_mode else "check mode")
    # The health line lands in the etcd phase's report, as over SSH (merge into the last phase).
    report = HostReport(host.name, [PhaseResult("etcd")])
    fleet = FleetRun({host.name: host}, {host.name: target}, {}, {host.name: report})
    wait_etcd_healthy(fleet, [host.name], run.cluster)
    if report.error:
        return _failed(host.name, "etcd-health", report.error)
    return _result(host.name, "etcd-health", report.phases, merge=True)


def _vip_skipped(run: _Run, inp: StepInput) -> str:
    ep = run.cluster.api_endpoint
    if ep is None or not ep.uses_haproxy_on_control_planes:
        return "no keepalived virtual IP in this cluster"
    if "loadbalancer" in run.skip or inp.check_mode:
        return "check mode" if inp.check_mode else "loadbalancer is skipped"
    return ""


def _vip_report(run: _Run, inp: StepInput) -> dict[str, Any]:
    """Once: who holds the VIP, as the SSH fleet reports it after the phase (on the first control plane
    checked); Ansible shows a warning when more than one does."""
    from bootstrap.phases.loadbalancer import vip_change

    checked = [h.name for h in run.inv.control_planes() if h.name in inp.vip_held]
    if why := _vip_skipped(run, inp) or ("" if checked else "no control plane was checked"):
        return _not_applicable(inp.host, "vip-report", why)
    change = vip_change("loadbalancer", run.cluster.api_endpoint, [n for n in checked if inp.vip_held[n]])
    out = _result(checked[0], "vip-report", [PhaseResult("loadbalancer", changes=[change])], merge=True)
    out["msg"] = f"{change.item} {change.detail}"
    if change.status == Status.WARNING:
        out["warnings"] = [out["msg"]]
    return out


def _reset(run: _Run, inp: StepInput, host: Any, target: Any) -> dict[str, Any]:
    """kubeadm reset on the host. When the play resets every etcd member the cluster goes as a whole:
    members do not remove each other one by one (that would lose quorum half-way)."""
    from bootstrap.join.reset import reset_phases
    from bootstrap.workflow.runner import run_phases

    members = {h.name for h in run.inv.hosts if h.is_etcd}
    whole = bool(inp.play_hosts) and members <= set(inp.play_hosts)
    phases = reset_phases(run.cluster.cert_dir, etcd_member_removed=whole)
    report = run_phases(_context(run, inp, host, target), phases, set())
    return _result(host.name, "reset", report.phases)


def _fleet_join(inv: Any, cluster: Any, shared: Any, inp: StepInput) -> Any:
    """`join -i`'s FleetJoin for the play's hosts (the new ones): its checks, its phase list (no
    super-admin.conf, etcd members added as learners) and its token logic."""
    from bootstrap.join.tokens import parse_token
    from bootstrap.workflow.scale import FleetJoin

    new = list(inp.play_hosts) or [inp.host]
    token = parse_token(inp.join_token) if inp.join_token else None
    return FleetJoin(inv, cluster, new, shared, dry_run=inp.check_mode, token=token, etcd_from_node=True)


def _join(run: _Run, inp: StepInput, step: str) -> Any:
    if run.job is None:
        raise UsageError(f"the {step} step belongs to scale.yml", hint="set kbootstrap_join: true for the play")
    return run.job


def _join_token(run: _Run, inp: StepInput, target: Any) -> dict[str, Any]:
    """Once, delegated to a running control plane: register the bootstrap token with its API server
    (or say why not: the kubelet's TLS bootstrap then waits for it), as `join -i` does."""
    from bootstrap.workflow.fleet import FleetRun

    job = _join(run, inp, "join-token")
    source = inp.source or job.source_cp
    job.source_cp = source
    job._register_tokens(FleetRun({}, {source: target}, {}, {}))
    return {
        "changed": False,
        "msg": job.token_note or "dry run: no token registered",
        "ansible_facts": {"kbootstrap_join_token": str(job.token), "kbootstrap_join_token_note": job.token_note},
        "kbootstrap": {"host": inp.host, "step": "join-token", "phases": []},
    }


def _tls_bootstrap(run: _Run, inp: StepInput, host: Any, target: Any) -> dict[str, Any]:
    from bootstrap.join.node import BOOTSTRAP_KUBECONFIG
    from bootstrap.join.tokens import parse_token
    from bootstrap.phases.base import Phase
    from bootstrap.render.kubeconfig import parse_kubeconfig
    from bootstrap.workflow.runner import run_phases
    from bootstrap.workflow.scale import TLS_BOOTSTRAP

    if host.is_control_plane:
        return _not_applicable(host.name, TLS_BOOTSTRAP, "control planes do not use a bootstrap token")
    job = _join(run, inp, TLS_BOOTSTRAP)
    job.token_note = inp.join_token_note
    state = target.read(BOOTSTRAP_KUBECONFIG)
    if state is not None:  # keep the node's own token, as `join -i` does
        with_token = parse_kubeconfig(state.content, BOOTSTRAP_KUBECONFIG).token
        if with_token:
            job.tokens[host.name] = parse_token(with_token)
    _load_shared(run, inp)
    phase = Phase(TLS_BOOTSTRAP, "Write bootstrap-kubelet.conf with a bootstrap token", job._tls_bootstrap)
    report = run_phases(_context(run, inp, host, target), (phase,), run.skip)
    return _result(host.name, TLS_BOOTSTRAP, report.phases)


def _netcheck_skipped(run: _Run, inp: StepInput) -> str:
    if inp.check_mode:
        return "check mode"
    return "skipped by --skip-phases" if run.skip & {"validate", "validate/netcheck"} else ""


def _netcheck_facts(run: _Run, inp: StepInput, host: Any, target: Any) -> dict[str, Any]:
    """netcheck's first round on this node: what runs here (the next step's probes depend on it)."""
    from bootstrap.validate.netcheck import FACTS_SCRIPT, SCRIPT_TIMEOUT

    if why := _netcheck_skipped(run, inp):
        return _not_applicable(host.name, "netcheck-facts", why)
    result = target.run(FACTS_SCRIPT, timeout=SCRIPT_TIMEOUT)
    if not result.ok:  # no facts: the node is reported as not checked, with this reason
        return {"changed": False, "msg": f"facts script exited {result.exit_code}: {result.stderr.strip()[-200:]}",
                "kbootstrap": {"host": host.name, "step": "netcheck-facts", "phases": []}}
    return {
        "changed": False,
        "msg": "netcheck facts gathered",
        "ansible_facts": {"kbootstrap_netcheck_facts": result.stdout},
        "kbootstrap": {"host": host.name, "step": "netcheck-facts", "phases": [], "netcheck_facts": result.stdout},
    }


def _netcheck(run: _Run, inp: StepInput, host: Any, target: Any) -> dict[str, Any]:
    """This node's probes (names, pings, ports of every peer), as `kbootstrap netcheck` runs them from
    it. Failures do not fail the task (the node checks still run); the validate step reports them."""
    from bootstrap.validate.netcheck import SCRIPT_TIMEOUT, parse_results, plan_for_source, probe_script

    if why := _netcheck_skipped(run, inp):
        return _not_applicable(host.name, "netcheck", why)
    probes = plan_for_source(run.inv, run.cluster, inp.netcheck_facts, host.name)
    result = target.run(probe_script(probes), timeout=SCRIPT_TIMEOUT)
    failed = [f"{r.probe.target} {r.probe.label}: {r.detail}" for r in parse_results(host.name, probes, result.stdout)
              if r.failed]
    return {
        "changed": False,
        "msg": f"{len(failed)} probe(s) failed: " + "; ".join(failed[:5]) if failed else f"{len(probes)} probes",
        "ansible_facts": {"kbootstrap_netcheck_failures": failed},
        "kbootstrap": {"host": host.name, "step": "netcheck", "phases": [], "netcheck_output": result.stdout},
    }


def _validate(run: _Run, inp: StepInput, host: Any, target: Any) -> dict[str, Any]:
    """`kbootstrap validate`'s node checks (testinfra over this connection); fails on any failure,
    its own or a probe of this node's netcheck."""
    from bootstrap.validate.nodes import ERROR, FAIL, PASS, SKIP, infra_host, node_checks, run_checks
    from bootstrap.workflow.cluster import node_spec

    if inp.check_mode or "validate" in run.skip:
        return _not_applicable(host.name, "validate", "check mode" if inp.check_mode else "skipped by --skip-phases")
    net = [f"netcheck {f}" for f in inp.netcheck_failures]
    if "validate/nodes" in run.skip:
        # Still a validation result, not a failed host, as over SSH.
        return {"changed": False, "failed": bool(net), "msg": "; ".join(net[:5]) or "node checks skipped",
                "kbootstrap_validate": {"node": host.name, "counts": {}, "checks": []},
                "kbootstrap": {"host": host.name, "step": "validate", "phases": []}}
    spec = node_spec(run.cluster, host, run.members)
    results = run_checks(infra_host(target), node_checks(host, spec, run.bundle, run.skip), spec)
    bad = [r for r in results if r.status in (FAIL, ERROR)]
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, SKIP, ERROR)}
    problems = [*(f"{r.check.id}: {r.message}" for r in bad), *net]
    return {
        "changed": False,
        "failed": bool(problems),
        "msg": f"{len(problems)} check(s) failed: " + "; ".join(problems[:5])
        if problems
        else f"{counts[PASS]} checks passed, {counts[SKIP]} skipped",
        "kbootstrap_validate": {"node": host.name, "counts": counts, "checks": [r.to_json() for r in results]},
        "kbootstrap": {"host": host.name, "step": "validate", "phases": []},
    }


# --------------------------------------------------------------------------------------------------
# ansible-runner events -> our reports.


def phase_from_json(d: Mapping[str, Any]) -> PhaseResult:
    """The inverse of HostReport.to_json for one phase."""
    changes = []
    for c in d.get("changes") or []:
        try:
            status = Status(c.get("status", "unchanged"))
        except ValueError:
            status = Status.WARNING
        changes.append(Change(str(d.get("name", "-")), str(c.get("item", "")), status, str(c.get("detail", ""))))
    return PhaseResult(
        str(d.get("name", "-")),
        seconds=float(d.get("seconds") or 0.0),
        changes=changes,
        error=d.get("error"),
        skipped_reason=d.get("skipped"),
    )


def _last_line(text: Any) -> str:
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@dataclass
class TaskTiming:
    host: str
    task: str
    role: str
    seconds: float
    status: str


@dataclass
class EventCollector:
    """Feed it ansible-runner events (`collect`); read per-host reports, stats and timings after."""

    hosts: list[str]
    on_phase: Callable[[str, PhaseResult], None] | None = None
    on_host_failed: Callable[[str, str], None] | None = None
    reports: dict[str, HostReport] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: list[TaskTiming] = field(default_factory=list)
    stopped_by: str = ""  # a host whose failure stopped the whole play (any_errors_fatal)
    validation: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # host -> validate step's checks
    etcd_sources: dict[str, str] = field(default_factory=dict)  # joined member -> the member it joined through
    netcheck_facts: dict[str, str] = field(default_factory=dict)  # host -> its netcheck facts output
    netcheck_outputs: dict[str, str] = field(default_factory=dict)  # host -> its probe script output

    def __post_init__(self) -> None:
        self.reports = {h: HostReport(h) for h in self.hosts}

    def report(self, host: str) -> HostReport:
        return self.reports.setdefault(host, HostReport(host))

    def collect(self, event: Mapping[str, Any]) -> bool:
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats":
            self._stats(data)
            return True
        if not kind.startswith("runner_on_") or kind in ("runner_on_start",):
            return True
        host = str(data.get("host", ""))
        if not host:
            return True
        res = data.get("res") or {}
        status = kind.removeprefix("runner_on_")
        task, role = str(data.get("task", "")), str(data.get("role", ""))
        self.timings.append(TaskTiming(host, task, role, float(data.get("duration") or 0), status))
        if kind == "runner_on_unreachable":
            msg = _last_line(res.get("msg")) or "unreachable"
            self._fail(host, f"cannot reach {host}: {msg}")
            return True
        ours = res.get("kbootstrap") if isinstance(res, Mapping) else None
        if isinstance(ours, Mapping):
            # A run_once step reports for the host it names (vip-report: the first control plane).
            self._phases(str(ours.get("host") or host), ours)
            if ours.get("etcd_source"):
                self.etcd_sources[host] = str(ours["etcd_source"])
            if "netcheck_facts" in ours:
                self.netcheck_facts[host] = str(ours["netcheck_facts"])
            if "netcheck_output" in ours:
                self.netcheck_outputs[host] = str(ours["netcheck_output"])
        if isinstance(res.get("kbootstrap_validate"), Mapping):
            # Validation failures are the report's `validation`, not a failed host (as over SSH).
            self.validation[host] = res["kbootstrap_validate"]
            return True
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            error = _last_line(res.get("msg")) or "failed"
            report = self.report(host)
            if not report.failed:  # a phase error already says it; otherwise the task's message
                self._fail(host, error)
            if isinstance(ours, Mapping) and ours.get("step") == "shared-pki":
                self.stopped_by = host
        return True

    def _phases(self, host: str, ours: Mapping[str, Any]) -> None:
        report = self.report(host)
        for raw in ours.get("phases") or []:
            phase = phase_from_json(raw)
            if ours.get("merge") and report.phases:
                report.phases[-1].changes.extend(phase.changes)
                continue
            report.phases.append(phase)
            if self.on_phase is not None:
                self.on_phase(host, phase)

    def _fail(self, host: str, message: str) -> None:
        self.report(host).error = message
        if self.on_host_failed is not None:
            self.on_host_failed(host, message)

    def _stats(self, data: Mapping[str, Any]) -> None:
        for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
            for host, n in (data.get(key) or {}).items():
                self.stats.setdefault(str(host), {})[key] = int(n)

    def finish(self, rc: int, status: str) -> None:
        """After the run: hosts the play stopped for (a fatal failure elsewhere, a timeout) say so.
        A host that merely failed is dropped by Ansible alone; the others go on and are not touched."""
        if rc == 0 or not (self.stopped_by or status in ("timeout", "canceled")):
            return
        for host, report in self.reports.items():
            if report.failed:
                continue
            if self.stopped_by:
                report.error = f"the play stopped before {host} finished: {self.stopped_by} failed"
            else:
                report.error = f"ansible-playbook {status} before {host} finished"

    def task_profile(self, top: int = 10) -> list[dict[str, Any]]:
        """Where the time went: per task, the slowest host's seconds and the sum over hosts."""
        by_task: dict[str, list[float]] = {}
        for t in self.timings:
            by_task.setdefault(f"{t.role + ' : ' if t.role else ''}{t.task}", []).append(t.seconds)
        ranked = sorted(by_task.items(), key=lambda kv: -max(kv[1]))[:top]
        return [
            {"task": k, "max_seconds": round(max(v), 3), "sum_seconds": round(sum(v), 3), "hosts": len(v)}
            for k, v in ranked
        ]


# --------------------------------------------------------------------------------------------------
# Running playbooks.


def playbooks_dir() -> Path:
    """The project's playbooks/: next to the package in a checkout, or shipped inside the wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_playbooks", here.parent / "playbooks"):
        if (candidate / "cluster.yml").is_file():
            return candidate
    raise RequirementError(
        "the kbootstrap playbooks are not installed (no playbooks/cluster.yml)",
        hint="run from a kbootstrap checkout, or install a wheel that ships them",
    )


@dataclass
class PlaybookRun:
    rc: int
    status: str
    seconds: float
    collector: EventCollector


def run_playbook(
    inventory: str | Path,
    playbook: str,
    *,
    hosts: list[str],
    limit: Iterable[str] | None = None,
    extravars: Mapping[str, Any] | None = None,
    forks: int = 64,
    check: bool = False,
    tofu: bool = False,
    on_phase: Callable[[str, PhaseResult], None] | None = None,
    on_host_failed: Callable[[str, str], None] | None = None,
    timeout: int | None = None,
    verbosity: int = 0,
) -> PlaybookRun:
    """Run playbooks/PLAYBOOK with ansible-runner (private data dir in a temp dir, pipelining on, host
    keys checked against the inventory's known_hosts) and collect its events."""
    import ansible_runner

    if shutil.which("ansible-playbook") is None:
        raise RequirementError(
            "ansible-playbook not found: the ansible transport needs ansible-core",
            hint="pip install ansible-core (in the same environment as kbootstrap)",
        )
    book = playbooks_dir() / playbook
    inv = Path(inventory).resolve()
    collector = EventCollector(hosts, on_phase=on_phase, on_host_failed=on_host_failed)
    extra = dict(extravars or {})
    extra.setdefault("kbootstrap_inventory", str(inv))
    if tofu:
        extra["kbootstrap_ssh_strict"] = "accept-new"  # OpenSSH's TOFU: unknown keys recorded, changed refused
    cmdline = "--check" if check else None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kbootstrap-ansible-") as pdd:
        envvars = {
            "ANSIBLE_CONFIG": str(playbooks_dir() / "ansible.cfg"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCAL_TEMP": str(Path(pdd) / "tmp"),
            # SSH masters of this run only: every run makes its own connections, so host keys are
            # verified each time (a master left by an earlier run would skip that), and they are
            # closed when the run ends instead of lingering for ControlPersist.
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(Path(pdd) / "cp"),
            # Our own process may have been started with a different cwd: everything is absolute.
            "KBOOTSTRAP_CWD": os.getcwd(),
        }
        r = ansible_runner.run(
            private_data_dir=pdd,
            project_dir=str(playbooks_dir()),
            playbook=str(book),
            inventory=str(inv),
            extravars=extra,
            envvars=envvars,
            forks=forks,
            limit=",".join(limit) if limit else None,
            cmdline=cmdline,
            event_handler=collector.collect,
            quiet=True,
            timeout=timeout,
            verbosity=verbosity,
        )
        _close_masters(Path(pdd) / "cp")
        rc, status = int(r.rc if r.rc is not None else 1), str(r.status)
        if rc != 0 and not any(rep.failed for rep in collector.reports.values()) and not collector.stats:
            # ansible-playbook failed before any host ran (syntax, inventory): its last words.
            tail = _last_line(r.stdout.read() if r.stdout else "") if hasattr(r, "stdout") else ""
            raise TransportError(f"ansible-playbook {playbook} failed (exit {rc}): {tail or status}")
    collector.finish(rc, status)
    return PlaybookRun(rc, status, time.monotonic() - started, collector)


def _close_masters(control_dir: Path) -> None:
    if not control_dir.is_dir():
        return
    for sock in control_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "kbootstrap"],
                       capture_output=True, timeout=10, check=False)


def _extravars(params: Mapping[str, Any], inv: Any) -> dict[str, Any]:
    spec = {k: v for k, v in params.items() if k in SPEC_PARAMS and v not in (None, "", ())}
    if spec.get("config"):
        spec["config"] = str(Path(str(spec["config"])).resolve())
    pki = Path(params.get("pki_dir") or Path("pki") / inv.path.parent.name).resolve()
    extra: dict[str, Any] = {"kbootstrap_params": _jsonable(spec), "kbootstrap_pki_dir": str(pki),
                             "kbootstrap_validate": False}
    if params.get("bundle"):
        extra["kbootstrap_bundle_override"] = str(Path(str(params["bundle"])).resolve())
    return extra


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _skipped_phases(params: Mapping[str, Any], inv: Any, cluster: Any) -> tuple[dict[str, str], set[str]]:
    """The report's skipped_phases, with reasons, as `init -i` words them."""
    from_inv = [str(s) for s in inv.vars.get("kbootstrap_skip_phases") or []]
    requested = [s.strip() for s in (params.get("skip_phases") or "").split(",") if s.strip()]
    inv_reason = str(inv.vars.get("kbootstrap_skip_reason") or "set in the inventory (kbootstrap_skip_phases)")
    skip = {s.removesuffix("/all") for s in [*requested, *cluster.skip_phases, *from_inv]}
    return (
        {p: (inv_reason if p in from_inv and p not in requested else "--skip-phases") for p in sorted(skip)},
        skip,
    )


def _fleet_command(
    params: dict[str, Any],
    playbook: str,
    *,
    limit: list[str] | None,
    title: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    from bootstrap.commands.common import emit
    from bootstrap.commands.fleet import Progress, summary
    from bootstrap.spec.inventory import load_inventory
    from bootstrap.validate.zones import check_zones
    from bootstrap.workflow.cluster import fleet_cluster_spec

    inv = load_inventory(params["inventory"])
    if not inv.control_planes():
        raise UsageError(f"{inv.path}: no host in kube_control_plane")
    if limit:
        known = {h.name for h in inv.hosts}
        unknown = [n for n in limit if n not in known]
        if unknown:
            raise UsageError(f"--limit: {', '.join(unknown)} not in the inventory {inv.path}")
    # Same validation as the SSH path, before Ansible starts: bad flags are one line, nothing runs.
    cluster = fleet_cluster_spec({k: v for k, v in params.items() if k in SPEC_PARAMS}, inv)
    skipped, skip = _skipped_phases(params, inv, cluster)
    zones = check_zones(inv.hosts)
    names = [h.name for h in inv.hosts if not limit or h.name in limit]
    output = params.get("output", "text")
    dry_run = bool(params.get("dry_run"))
    validate = playbook == "cluster.yml" and not dry_run and "validate" not in skip
    progress = Progress(names, enabled=output == "text")
    with progress:
        progress.note(f"ansible-playbook {playbook} on {len(names)} hosts")
        result = run_playbook(
            inv.path,
            playbook,
            hosts=names,
            limit=limit,
            extravars={**_extravars(params, inv), **(extra or {}), "kbootstrap_validate": validate},
            forks=int(params.get("forks") or 64),
            check=dry_run,
            tofu=bool(params.get("trust_on_first_use")),
            on_phase=progress.phase_done,
            on_host_failed=progress.host_failed,
        )
    reports = {n: result.collector.report(n) for n in names}
    validation = validation_result(result, inv, cluster, names, output, skip) if validate else None
    data: dict[str, Any] = {
        "hosts": {n: reports[n].to_json() for n in names},
        "skipped_phases": skipped,
        "dry_run": dry_run,
        "seconds": round(result.seconds, 2),
    }
    if playbook == "scale.yml":  # as `join -i` words and shapes it
        data["skipped_phases"] = dict.fromkeys(skipped, "--skip-phases or the inventory (kbootstrap_skip_phases)")
        data["etcd_joined_through"] = next(iter(result.collector.etcd_sources.values()), None)
    if playbook == "cluster.yml":
        data["validation"] = validation.to_json() if validation is not None else None
        data["zones"] = {"warnings": zones.warnings, "suggestion": zones.suggestion or None}
    if zones.warnings and output == "text":
        for w in zones.warnings:
            click.echo(f"warning: {w}", err=True)
    data["transport"] = "ansible"

    def text() -> str:
        out = summary(reports, skipped, dry_run, result.seconds, title=title)
        return out + ("\n\n" + validation.text() if validation is not None else "")

    emit(output, data, text)
    failed = any(r.failed for r in reports.values()) or (validation is not None and validation.failed)
    if result.rc != 0 or failed:
        raise SystemExit(1)


def validation_result(
    result: PlaybookRun, inv: Any, cluster: Any, names: list[str], output: str, skip: set[str]
) -> Any:
    """The validate role's netcheck and node checks, as `init -i` reports its validation."""
    from bootstrap.validate.fleet import ValidationResult
    from bootstrap.validate.netcheck import assemble_report
    from bootstrap.validate.nodes import CheckResult, NodeCheck, NodeReport

    collector = result.collector

    def why_not(n: str) -> str:
        return collector.report(n).error or "not validated: failed earlier in this run"

    skipped: dict[str, str] = {}
    net = None
    if "validate/netcheck" in skip:
        skipped["netcheck"] = "--skip-phases"
    else:
        seconds = max((t.seconds for t in collector.timings if t.task.startswith("Netcheck")), default=0.0)
        net = assemble_report(inv, cluster, collector.netcheck_facts, collector.netcheck_outputs,
                              {n: why_not(n) for n in names}, names, seconds)
    nodes = None
    if "validate/nodes" in skip:
        skipped["validate"] = "--skip-phases"
    else:
        nodes = []
        for n in names:
            got = collector.validation.get(n)
            if got is None:
                nodes.append(NodeReport(n, error=why_not(n)))
                continue
            checks = [
                CheckResult(
                    NodeCheck(str(c.get("id")), str(c.get("kind")), str(c.get("subject")), why=str(c.get("why") or "")),
                    str(c.get("status")),
                    str(c.get("message") or ""),
                )
                for c in got.get("checks") or []
            ]
            nodes.append(NodeReport(n, checks))
    return ValidationResult(net, nodes, output=output, skipped=skipped)


def run_fleet_init_ansible(params: dict[str, Any], limit: list[str] | None = None) -> None:
    """`kbootstrap init -i INV --transport ansible`: playbooks/cluster.yml; same params and report
    as `run_fleet_init` (dry_run -> --check)."""
    _fleet_command(params, "cluster.yml", limit=limit, title="kbootstrap init (ansible)")


def run_fleet_join_ansible(params: dict[str, Any], limit: list[str]) -> None:
    """`kbootstrap join -i INV --limit HOSTS --transport ansible`: playbooks/scale.yml on the new hosts."""
    if not limit:
        raise UsageError("join -i needs --limit with the new hosts")
    extra = {"kbootstrap_token": params["token"]} if params.get("token") else None
    _fleet_command(params, "scale.yml", limit=limit, title="kbootstrap join (ansible)", extra=extra)


def run_fleet_reset_ansible(params: dict[str, Any], limit: list[str] | None = None) -> None:
    """Reset every host of the inventory (or --limit): playbooks/reset.yml."""
    _fleet_command(params, "reset.yml", limit=limit, title="kbootstrap reset (ansible)")
