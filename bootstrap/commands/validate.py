"""`kbootstrap validate`: every node against the spec (testinfra), plus the netcheck matrix."""

from __future__ import annotations

import sys

import click

from bootstrap.commands.common import emit, output_option
from bootstrap.commands.fleet import split_list
from bootstrap.workflow.check import validate_nodes
from bootstrap.workflow.options import FleetOptions


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
    opts = FleetOptions(inventory, flags={"config": config}, forks=forks, tofu=trust_on_first_use, bundle=bundle,
                        skip=split_list(skip_phases))
    result = validate_nodes(opts, with_netcheck=with_netcheck, output=output)
    emit(output, result.to_json(), lambda: result.text(color=sys.stdout.isatty()))
    if result.failed:
        raise SystemExit(1)
