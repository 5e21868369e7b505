"""`kbootstrap validate`: every node against the spec (testinfra), plus the netcheck matrix."""

from __future__ import annotations

import sys

import click

from bootstrap.commands.common import emit, output_option
from bootstrap.commands.netcheck import close_targets, open_targets
from bootstrap.spec.inventory import load_inventory


@click.command("validate")
@click.option("-i", "--inventory", required=True, type=click.Path(dir_okay=False),
              help="Kubespray hosts.yaml / INI or k0sctl.yaml.")
@click.option("--config", type=click.Path(dir_okay=False), help="kubeadm config file used with init (optional).")
@click.option("--bundle", type=click.Path(file_okay=False), help="Offline bundle to compare checksums with "
              "(default: the inventory's kbootstrap_bundle).")
@click.option("--skip-phases", default="", help="Phases skipped at init (comma-separated): their checks are skipped.")
@click.option("--with-netcheck", is_flag=True, help="Also run the netcheck matrix (as init does).")
@click.option("--forks", type=click.IntRange(1, 512), default=64, show_default=True, help="Hosts in parallel.")
@click.option("--trust-on-first-use", is_flag=True, help="Accept and record unknown host keys (never changed ones).")
@output_option
def validate(
    inventory: str,
    config: str | None,
    bundle: str | None,
    skip_phases: str,
    with_netcheck: bool,
    forks: int,
    trust_on_first_use: bool,
    output: str,
) -> None:
    """Check each node is in the state the spec asked for; exit 1 on any failure.

    Services active (containerd; etcd in host mode), sysctls and modules, swap off, files and modes
    (keys 0600, kubeconfigs 0600, manifests not group/world readable), binaries with the bundle's
    checksum and a version the skew policy allows, and no CA private key on workers. Checks of
    phases that were skipped (inventory kbootstrap_skip_phases, --skip-phases) are skipped, saying so.
    """
    from bootstrap.validate.fleet import cluster_spec_for, validate_fleet
    from bootstrap.workflow.cluster import bundle_for

    inv = load_inventory(inventory)
    spec = cluster_spec_for(inv, config)
    the_bundle = bundle_for(inv, bundle)
    phases = [s.strip() for s in skip_phases.split(",") if s.strip()]
    if not with_netcheck:
        phases.append("validate/netcheck")
    targets, unreachable = open_targets(inv, forks, trust_on_first_use)
    try:
        result = validate_fleet(inv, spec, targets, bundle=the_bundle, output=output, skip_phases=phases,
                                unreachable=unreachable, forks=forks)
    finally:
        close_targets(targets)
    if not with_netcheck:
        result.skipped.pop("netcheck", None)  # not asked for: nothing to report
    emit(output, result.to_json(), lambda: result.text(color=sys.stdout.isatty()))
    if result.failed:
        raise SystemExit(1)
