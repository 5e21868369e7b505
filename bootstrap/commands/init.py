"""`kbootstrap init` and `kbootstrap init phase ...`, generated from the phase table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bootstrap.commands.common import emit, output_option, rootfs_option
from bootstrap.errors import PhaseError, UsageError
from bootstrap.phases.base import Phase
from bootstrap.phases.node import BINARIES, CONTAINER_RUNTIME, KERNEL
from bootstrap.phases.table import check_skip_list, init_phases
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import EncryptionAlgorithm
from bootstrap.transport.local import LocalTarget
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import HostReport, PhaseResult, Status
from bootstrap.workflow.runner import NOT_IMPLEMENTED, run_phases

# Fleet-only phases: preparing a node (kernel, runtime, binaries) is not part of kubeadm's init.
NODE_PREP_PHASES = (KERNEL, CONTAINER_RUNTIME, BINARIES)

_SPEC_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--config", type=click.Path(dir_okay=False), help="kubeadm config file (v1beta3/v1beta4, multi-document)."
    ),
    click.option("--control-plane-endpoint", help="A stable IP or DNS name for the control plane, HOST[:PORT]."),
    click.option("--apiserver-advertise-address", help="The IP address the API server advertises it's listening on."),
    click.option("--apiserver-bind-port", type=int, help="Port for the API server to bind to. [default: 6443]"),
    click.option(
        "--apiserver-cert-extra-sans", help="Extra Subject Alternative Names (IPs or DNS names), comma-separated."
    ),
    click.option("--node-name", help="The node's name. [default: lower-cased hostname]"),
    click.option("--pod-network-cidr", help="Range of IP addresses for the pod network."),
    click.option("--service-cidr", help="Range of IP addresses for service VIPs. [default: 10.96.0.0/12]"),
    click.option("--service-dns-domain", help="DNS domain for services. [default: cluster.local]"),
    click.option("--kubernetes-version", help="Kubernetes version to target. [default: newest supported]"),
    click.option("--cert-dir", help="Where certificates are stored. [default: /etc/kubernetes/pki]"),
    click.option("--cri-socket", help="CRI socket to connect to."),
    click.option("--image-repository", help="Registry to pull control plane images from. [default: registry.k8s.io]"),
    click.option(
        "--encryption-algorithm",
        type=click.Choice([a.value for a in EncryptionAlgorithm]),
        help="Key algorithm for keys and certificates (kubeadm v1beta4 encryptionAlgorithm). [default: RSA-2048]",
    ),
    click.option(
        "--etcd-mode", type=click.Choice(["static-pod", "host"]), help="Run etcd as a static pod or a systemd unit."
    ),
    click.option(
        "--hardening",
        type=click.Choice(["cis", "kubeadm"]),
        help="cis (default): our CIS-benchmark defaults; kubeadm: kubeadm's exact defaults. See docs/hardening.md.",
    ),
    click.option(
        "--ignore-preflight-errors", help="Preflight checks whose errors become warnings (comma list, or all)."
    ),
    click.option("--dry-run", is_flag=True, help="Print what would be written; write and start nothing."),
    rootfs_option,
    output_option,
]


def spec_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_SPEC_OPTIONS):
        fn = opt(fn)
    return fn


_FLEET_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "-i",
        "--inventory",
        type=click.Path(dir_okay=False),
        help="Kubespray inventory (hosts.yaml or INI) or k0sctl.yaml: provision every host over SSH.",
    ),
    click.option("--forks", type=int, default=64, show_default=True, help="Hosts worked on in parallel."),
    click.option(
        "--trust-on-first-use", is_flag=True, help="Accept and record unknown SSH host keys (never changed ones)."
    ),
    click.option("--pki-dir", help="Where the control machine keeps the cluster's CAs. [default: pki/<inventory dir>]"),
    click.option("--bundle", help="Offline bundle directory (default: the inventory's kbootstrap_bundle)."),
    click.option(
        "--upstream-url",
        help="Without a bundle, fetch kubelet/kubeadm/kubectl (sha256-pinned) from this mirror. [default: dl.k8s.io]",
    ),
    click.option(
        "--transport",
        type=click.Choice(["ssh", "ansible"]),
        default="ssh",
        show_default=True,
        help="How -i runs: our SSH transport, or playbooks/ through ansible-runner (same result, same report).",
    ),
]


def fleet_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_FLEET_OPTIONS):
        fn = opt(fn)
    return fn


def run_init(params: dict[str, Any], phases: tuple[Phase, ...], skip: set[str], *, prefix: str = "") -> None:
    spec = build_spec(params, params.get("config"))
    skip |= check_skip_list(init_phases(), spec.skip_phases)
    target = LocalTarget(params["rootfs"] or "/", name=spec.node.name)
    ctx = RunContext(spec, target, dry_run=bool(params.get("dry_run")))
    output = params.get("output", "text")
    verbose = int((click.get_current_context().find_root().obj or {}).get("verbose", 0))
    listener = (lambda host, result: _print_phase(result, ctx.dry_run, verbose)) if output == "text" else None
    report = run_phases(ctx, phases, skip, prefix=prefix, on_phase=listener)
    emit(
        output,
        {"hosts": {report.host: report.to_json()}, "dry_run": ctx.dry_run},
        lambda: _summary(report, ctx.dry_run),
    )
    if report.failed:
        failed = next(p for p in report.phases if p.error)
        raise PhaseError(f"phase {failed.name} failed on {report.host}: {failed.error}")


_WORDS = {Status.CREATED: "created", Status.UPDATED: "updated"}
_DRY = {Status.CREATED: "would create", Status.UPDATED: "would update"}


def _print_phase(result: PhaseResult, dry_run: bool, verbose: int) -> None:
    tag = f"[{result.name}]"
    if result.skipped_reason == NOT_IMPLEMENTED:
        return  # one line in the summary says where we stopped
    if result.skipped_reason:
        click.echo(f"{tag} skipped: {result.skipped_reason}")
        return
    if result.name == "preflight" and all(c.status == Status.SKIPPED for c in result.changes) and not verbose:
        click.echo(
            f"{tag} skipped {len(result.changes)} checks of the live host (--rootfs): "
            + ", ".join(c.item for c in result.changes)
        )
        return
    for c in result.changes:
        if c.status.changed:
            word = (_DRY if dry_run else _WORDS)[c.status]
            click.echo(f"{tag} {word} {c.item}" + (f" ({c.detail})" if c.detail else ""))
        elif c.status in (Status.SKIPPED, Status.WARNING, Status.FAILED):
            click.echo(f"{tag} {c.status.value}: {c.item}" + (f": {c.detail}" if c.detail else ""))
        elif verbose:
            click.echo(f"{tag} unchanged {c.item}")


def _summary(report: HostReport, dry_run: bool) -> str:
    changes = [c for p in report.phases for c in p.changes]
    unchanged = sum(1 for c in changes if c.status == Status.UNCHANGED)
    stopped = [p.name for p in report.phases if p.skipped_reason and p.skipped_reason.startswith("needs a running")]
    lines = []
    if report.failed:
        failed = next(p for p in report.phases if p.error)
        lines.append(f"{report.host}: FAILED in phase {failed.name}")
    elif report.changed == 0:
        lines.append(f"{report.host}: nothing to do, {unchanged} items already as specified")
    else:
        verb = "would change" if dry_run else "changed"
        lines.append(f"{report.host}: {report.changed} {verb}, {unchanged} unchanged")
    if stopped and not report.failed:
        lines.append(
            f"stopped before {stopped[0]}: phases {', '.join(stopped)} need a running kube-apiserver, "
            "which kbootstrap does not start yet (see README)"
        )
    return "\n".join(lines)


@click.group("init", invoke_without_command=True, help="Run this command to set up a Kubernetes control plane.")
@spec_options
@click.option("--skip-phases", help="Phases to skip, comma-separated (e.g. preflight,certs/apiserver).")
@fleet_options
@click.pass_context
def init(ctx: click.Context, **params: Any) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if params.get("inventory"):
        if params.get("transport") == "ansible":
            from bootstrap.transport.ansible import run_fleet_init_ansible

            run_fleet_init_ansible(params)
            return
        from bootstrap.commands.fleet import run_fleet_init

        run_fleet_init(params)
        return
    skip = check_skip_list(
        init_phases(), (params.get("skip_phases") or "").split(",") if params.get("skip_phases") else []
    )
    run_init(params, init_phases(), skip)


@init.group("phase", help="Use this command to invoke single phase of the init workflow.")
def phase_group() -> None:
    pass


def _leaf(phase: Phase, prefix: str, name: str | None = None, *, fleet_only: bool = False) -> click.Command:
    path = f"{prefix}/{phase.name}" if prefix else phase.name

    @click.command(name or phase.name, help=phase.help + (" (fleet runs: needs -i)" if fleet_only else ""))
    @spec_options
    @fleet_options
    def command(**params: Any) -> None:
        if params.get("inventory"):
            from bootstrap.commands.fleet import run_fleet_init

            if params.get("transport") == "ansible":
                raise UsageError("init phase NAME runs over SSH only", hint="drop --transport ansible")
            run_fleet_init(params, only=path)
        elif fleet_only:
            raise UsageError(f"phase {path} prepares fleet nodes over SSH", hint="pass -i INVENTORY")
        else:
            run_init(params, (phase,), set(), prefix=prefix)

    return command


def _add_phase_commands() -> None:
    for top in (*NODE_PREP_PHASES, *init_phases()):
        fleet_only = top in NODE_PREP_PHASES
        if top.needs_api_server:
            continue
        if not top.children:
            phase_group.add_command(_leaf(top, "", fleet_only=fleet_only))
            continue
        sub = click.Group(top.name, help=top.help)
        phase_group.add_command(sub)
        if len(top.children) > 1:
            sub.add_command(_leaf(top, "", name="all", fleet_only=fleet_only))
            sub.commands["all"].help = f"{top.help}: all of them"
        for child in top.children:
            sub.add_command(_leaf(child, top.name, fleet_only=fleet_only))


_add_phase_commands()
