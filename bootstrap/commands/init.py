"""`kbootstrap init` and `kbootstrap init phase ...`, generated from the phase table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from bootstrap.commands.common import emit, output_option, rootfs_option
from bootstrap.commands.fleet import fleet_options, run_and_report, split_list
from bootstrap.commands.report import node_summary, phase_lines
from bootstrap.engine.phase import ALL, Phase
from bootstrap.engine.result import PhaseResult
from bootstrap.errors import PhaseError, UsageError
from bootstrap.phases.cluster_api import OBJECTS_NOTE
from bootstrap.phases.show_join import JOIN_NOTE
from bootstrap.phases.tree import INIT
from bootstrap.spec.kubeadm_config import ignored_documents
from bootstrap.spec.model import EncryptionAlgorithm
from bootstrap.workflow.init import init_fleet, init_node
from bootstrap.workflow.options import Events

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
    click.option(
        "--network-plugin", help="Pod network: kube-router, none or cni (Kubespray's kube_network_plugin). "
        "[default: none on one node, as kubeadm; kube-router with -i]"),
    click.option("--patches", type=click.Path(file_okay=False),
                 help="A directory of kubeadm patches (target[suffix][+patchtype].{json,yaml}) for the static pods "
                 "and the kubelet configuration, read on this machine."),
    click.option("--dry-run", is_flag=True, help="Print what would be written and the API objects; change nothing."),
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
    click.option(
        "--vault-password-file", type=click.Path(dir_okay=False),
        help="Decrypt the inventory's Ansible Vault values with this file, as ansible-playbook. "
        "[default: $ANSIBLE_VAULT_PASSWORD_FILE]",
    ),
    click.option("-b", "--become", is_flag=True,
                 help="Run as root through sudo on every host, as ansible-playbook -b (else: ansible_become)."),
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


def fleet_option_set(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_FLEET_OPTIONS):
        fn = opt(fn)
    return fn


def note_ignored_documents(params: dict[str, Any]) -> None:
    """kubeadm's warning for each document of --config that init does not read (JoinConfiguration, ...)."""
    if params.get("config"):
        for line in ignored_documents(params["config"], "init"):
            click.echo(line, err=True)


def run_init(params: dict[str, Any], *, only: str | None = None) -> None:
    """`init` and `init phase PATH` on this node (or a --rootfs directory)."""
    note_ignored_documents(params)
    dry_run = bool(params.get("dry_run"))
    output = params.get("output", "text")
    verbose = int((click.get_current_context().find_root().obj or {}).get("verbose", 0))

    def show(host: str, result: PhaseResult) -> None:
        for line in phase_lines(result, dry_run, verbose):
            click.echo(line)

    events = Events(on_phase=show if output == "text" else None)
    result = init_node(
        params, rootfs=params.get("rootfs"), dry_run=dry_run, only=only, skip=split_list(params.get("skip_phases")),
        events=events,
    )
    report = next(iter(result.hosts.values()))
    data = {"hosts": {report.host: report.to_json()}, "dry_run": dry_run,
            **{k: result.notes[k] for k in (OBJECTS_NOTE, JOIN_NOTE) if k in result.notes}}
    emit(output, data, lambda: node_summary(report, dry_run, result))
    if report.failed:
        failed = next((p for p in report.phases if p.error), None)
        raise PhaseError(f"phase {failed.name if failed else '?'} failed on {report.host}: "
                         f"{failed.error if failed else report.error}")


def run_init_fleet(params: dict[str, Any], *, only: str | None = None) -> None:
    """`init -i` and `init phase PATH -i`: every host of the inventory (or ROOTFS/<host>/)."""
    note_ignored_documents(params)
    if params.get("transport") == "ansible":
        if only is not None:
            raise UsageError("init phase NAME runs over SSH only", hint="drop --transport ansible")
        from bootstrap.commands.ansible import init_ansible

        init_ansible(params)
        return
    opts = fleet_options(params, only=only)
    title = "kbootstrap init" + (f" ({opts.rootfs}: rendered offline)" if opts.rootfs else "")
    run_and_report(opts, params.get("output", "text"), title, init_fleet, extra={"validation": None})


def upload_certs_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """init's own: kubeadm's --upload-certs and the key it encrypts with."""
    fn = click.option("--certificate-key", help="Key to encrypt the uploaded certificates with (64 hex characters). "
                      "[default: made once, kept 0600 next to the CAs]")(fn)
    return click.option("--upload-certs", is_flag=True,
                        help="Upload the shared certificates to the kubeadm-certs Secret.")(fn)


@click.group("init", invoke_without_command=True, help="Run this command to set up a Kubernetes control plane.")
@spec_options
@upload_certs_options
@click.option("--skip-phases", help="Phases to skip, comma-separated (e.g. preflight,certs/apiserver).")
@fleet_option_set
@click.pass_context
def init(ctx: click.Context, **params: Any) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if params.get("inventory"):
        run_init_fleet(params)
        return
    run_init(params)


@init.group("phase", help="Use this command to invoke single phase of the init workflow.")
def phase_group() -> None:
    pass


def _leaf(phase: Phase, path: str, name: str | None = None) -> click.Command:
    runs_on = f" Runs on {phase.hosts.name}." if phase.hosts is not ALL else ""
    needs = " (fleet runs: needs -i)" if phase.fleet_only else ""

    @click.command(name or phase.name, help=phase.help + needs + runs_on)
    @spec_options
    @upload_certs_options
    @fleet_option_set
    def command(**params: Any) -> None:
        if params.get("inventory"):
            run_init_fleet(params, only=path)
        elif phase.fleet_only:
            raise UsageError(f"phase {path} prepares fleet nodes over SSH", hint="pass -i INVENTORY")
        else:
            run_init(params, only=path)

    return command


def _add_phase_commands() -> None:
    """`init phase ...`, generated from the init tree: every phase (and sub-phase) is a command."""
    for top in INIT:
        if not top.children:
            phase_group.add_command(_leaf(top, top.name))
            continue
        sub = click.Group(top.name, help=top.help)
        phase_group.add_command(sub)
        if len(top.children) > 1:
            sub.add_command(_leaf(top, top.name, name="all"))
            sub.commands["all"].help = f"{top.help}: all of them"
        for child in top.children:
            inherited = replace(child, hosts=top.hosts, fleet_only=top.fleet_only)
            sub.add_command(_leaf(inherited, f"{top.name}/{child.name}"))


_add_phase_commands()
