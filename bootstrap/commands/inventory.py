"""`kbootstrap inventory show`: what an inventory means before a run."""

from __future__ import annotations

import click

from bootstrap.commands.common import emit, output_option
from bootstrap.workflow.inventory_view import describe


@click.group("inventory")
def inventory() -> None:
    """Read an inventory as a run would."""


@inventory.command("show")
@click.option("-i", "--inventory", "path", required=True, type=click.Path(dir_okay=False),
              help="Kubespray hosts.yaml / INI or k0sctl.yaml.")
@click.option("--config", type=click.Path(dir_okay=False), help="kubeadm config file used with init (optional).")
@click.option("--vault-password-file", type=click.Path(dir_okay=False),
              help="Decrypt the inventory's Ansible Vault values. [default: $ANSIBLE_VAULT_PASSWORD_FILE]")
@output_option
def show(path: str, config: str | None, vault_password_file: str | None, output: str) -> None:
    """The cluster spec the inventory builds and, per host, its roles, addresses, connection and etcd
    membership, with the warnings a run would give (like `ansible-inventory --list`). Contacts no host."""
    view = describe(path, vault_password_file, config)
    emit(output, view.to_json(), view.text)
