"""`kbootstrap reset` (this node, kubeadm reset) and `kbootstrap remove-node` (a fleet host)."""

from __future__ import annotations

from typing import Any

import click

from bootstrap.commands.common import emit, output_option, rootfs_option, with_file_values
from bootstrap.commands.fleet import fleet_options, render, run_and_report, split_list
from bootstrap.commands.init import fleet_option_set
from bootstrap.engine.result import HostReport, Status
from bootstrap.errors import UsageError
from bootstrap.phases.reset import NOT_CLEANED
from bootstrap.spec.kubeadm_config import load_config_file, reset_options
from bootstrap.spec.model import DEFAULT_CERT_DIR
from bootstrap.workflow.reset import remove_node as remove_node_workflow
from bootstrap.workflow.reset import reset_fleet, reset_node

WARNING = "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted."


def reset_text(report: HostReport, dry_run: bool) -> str:
    lines = []
    for p in report.phases:
        for c in p.changes:
            if c.status == Status.UPDATED:
                lines.append(
                    f"[reset] {c.detail}: {c.item}"
                    if c.detail in ("removed", "would be removed")
                    else f"[reset] {c.item}: {c.detail}"
                )
            elif c.status in (Status.SKIPPED, Status.WARNING, Status.FAILED):
                lines.append(f"[reset] {c.status.value}: {c.item}: {c.detail}")
        if p.error:
            lines.append(f"[reset] FAILED in {p.name}: {p.error}")
    if not report.failed:
        lines.append(("[reset] dry run: nothing was removed" if dry_run else "[reset] done") + "\n")
        lines.extend(NOT_CLEANED)
    return "\n".join(lines)


@click.command(
    "reset",
    help="Performs a best effort revert of changes made to this host by 'kbootstrap init' or 'kbootstrap join'.",
)
@click.option("-f", "--force", is_flag=True, help="Reset the node without prompting for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--cleanup-tmp-dir", is_flag=True, help="Cleanup the /etc/kubernetes/tmp directory.")
@click.option(
    "--cert-dir",
    help=f"The path to the directory where the certificates are stored. [default: {DEFAULT_CERT_DIR}]",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="A kubeadm config file: its ResetConfiguration (force, dryRun, cleanupTmpDir, certificatesDir).")
@click.option("--limit", help="With -i --transport ansible: only these hosts (comma-separated).")
@rootfs_option
@output_option
@fleet_option_set
def reset(
    force: bool,
    dry_run: bool,
    cleanup_tmp_dir: bool,
    cert_dir: str | None,
    config_path: str | None,
    rootfs: str | None,
    output: str,
    limit: str | None,
    **fleet: Any,
) -> None:
    if config_path:
        given = {"force": force, "dry_run": dry_run, "cleanup_tmp_dir": cleanup_tmp_dir, "cert_dir": cert_dir}
        merged = with_reset_configuration(given, config_path)
        force, dry_run, cleanup_tmp_dir, cert_dir = (merged[k] for k in given)
    cert_dir = cert_dir or DEFAULT_CERT_DIR
    if fleet.get("inventory"):
        _reset_fleet({**fleet, "force": force, "dry_run": dry_run, "output": output}, limit)
        return
    if not force and not dry_run:
        click.echo(WARNING, err=True)
        if not click.confirm("[reset] Are you sure you want to proceed?", default=False, err=True):
            raise UsageError("aborted reset operation")
    result = reset_node(cert_dir, rootfs=rootfs, dry_run=dry_run, cleanup_tmp_dir=cleanup_tmp_dir)
    report = next(iter(result.hosts.values()))
    emit(output, {"hosts": {report.host: report.to_json()}, "dry_run": dry_run}, lambda: reset_text(report, dry_run))
    if report.failed:
        raise SystemExit(1)


def with_reset_configuration(given: dict[str, Any], config: str) -> dict[str, Any]:
    """The flags with the file's ResetConfiguration values; a value set in both places is refused.
    Its other fields (criSocket, skipPhases, ignorePreflightErrors, unmountFlags, timeouts) are
    validated; kbootstrap's reset has nothing they change."""
    load_config_file(config, "reset")
    return with_file_values(given, reset_options(config), config, "reset")


def _reset_fleet(params: dict[str, Any], limit: str | None) -> None:
    """Every host of an inventory, as Kubespray's reset.yml: the whole cluster goes, so no etcd
    member leaves one by one (that would lose quorum half-way); each node is wiped in parallel."""
    hosts = split_list(limit)
    if not params["force"] and not params["dry_run"]:
        click.echo(WARNING, err=True)
        if not click.confirm("[reset] Reset every host of the inventory?", default=False, err=True):
            raise UsageError("aborted reset operation")
    if params.get("transport") == "ansible":
        from bootstrap.commands.ansible import reset_ansible

        reset_ansible(params, list(hosts) or None)
        return
    if hosts:
        raise UsageError(
            "reset -i resets the whole cluster over SSH",
            hint="to take some hosts out of a running cluster use `kbootstrap remove-node -i INV --node HOST`",
        )
    run_and_report(fleet_options(params), params.get("output", "text"), "kbootstrap reset", reset_fleet)


@click.command(
    "remove-node",
    help="Remove a host from an inventory's cluster: its etcd member (through a "
    "surviving member) and everything init/join wrote on it.",
)
@click.option("--node", required=True, help="The inventory host to remove.")
@click.option(
    "--force", is_flag=True, help="The node is dead: remove its etcd member through the survivors and never contact it."
)
@fleet_option_set
@output_option
def remove_node(**params: Any) -> None:
    if not params.get("inventory"):
        raise UsageError("remove-node needs -i INVENTORY", hint="on the node itself, use `kbootstrap reset`")
    if params.get("transport") == "ansible":
        raise UsageError("remove-node runs over SSH only", hint="drop --transport ansible")
    node = str(params["node"])
    result = remove_node_workflow(fleet_options(params), node, force=bool(params.get("force")))
    report = result.hosts[node]
    output = params.get("output", "text")
    if output == "json":
        render(result, output, "kbootstrap remove-node", extra={"forced": bool(params.get("force"))})
        return

    lines = []
    for p in report.phases:
        for c in p.changes:
            lines.append(f"[{p.name}] {c.status.value}: {c.item}" + (f" ({c.detail})" if c.detail else ""))
        if p.skipped_reason:
            lines.append(f"[{p.name}] skipped: {p.skipped_reason}")
        if p.error:
            lines.append(f"[{p.name}] FAILED: {p.error}")
    if not report.failed:
        lines.append(f"{node} removed: take it out of {params['inventory']} so later runs leave it alone")
    click.echo("\n".join(lines))
    if report.failed:
        raise SystemExit(1)
