"""The `kbootstrap` command line. This is the edge: typed errors become one line + an exit code."""

from __future__ import annotations

import importlib

import click

from bootstrap import __version__
from bootstrap.commands.common import EdgeGroup

# Each command's module is imported when that command runs (or --help lists them): `kbootstrap init`
# does not pay for the lab, certs and config modules, a few tenths of a second of every rerun.
COMMANDS = {
    "init": "bootstrap.commands.init:init",
    "join": "bootstrap.commands.join:join",
    "reset": "bootstrap.commands.reset:reset",
    "remove-node": "bootstrap.commands.reset:remove_node",
    "token": "bootstrap.commands.token:token",
    "certs": "bootstrap.commands.certs:certs",
    "config": "bootstrap.commands.config:config",
    "kubeconfig": "bootstrap.commands.kubeconfig:kubeconfig",
    "rbac": "bootstrap.commands.rbac:rbac",
    "netcheck": "bootstrap.commands.netcheck:netcheck",
    "validate": "bootstrap.commands.validate:validate",
    "inventory": "bootstrap.commands.inventory:inventory",
    "bundle": "bootstrap.commands.bundle:bundle",
    "lab": "bootstrap.lab.cli:lab",
}


class LazyGroup(EdgeGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kbootstrap")
@click.option("-v", "--verbose", count=True, help="More output (repeat for more).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """kbootstrap: provision and bootstrap Kubernetes clusters, kubeadm-exact, from one node to a fleet."""
    ctx.obj = {"verbose": verbose}


if __name__ == "__main__":
    main()
