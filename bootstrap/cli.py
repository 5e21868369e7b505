"""The `kbootstrap` command line. This is the edge: typed errors become one line + an exit code."""

from __future__ import annotations

import click

from bootstrap import __version__
from bootstrap.commands.common import EdgeGroup


@click.group(cls=EdgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kbootstrap")
@click.option("-v", "--verbose", count=True, help="More output (repeat for more).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """kbootstrap: provision and bootstrap Kubernetes clusters, kubeadm-exact, from one node to a fleet."""
    ctx.obj = {"verbose": verbose}


def _register() -> None:
    from bootstrap.commands.bundle import bundle
    from bootstrap.commands.certs import certs
    from bootstrap.commands.config import config
    from bootstrap.commands.init import init
    from bootstrap.commands.join import join
    from bootstrap.commands.kubeconfig import kubeconfig
    from bootstrap.commands.netcheck import netcheck
    from bootstrap.commands.rbac import rbac
    from bootstrap.commands.reset import remove_node, reset
    from bootstrap.commands.token import token
    from bootstrap.commands.validate import validate
    from bootstrap.lab.cli import lab

    commands = (init, join, reset, remove_node, token, certs, config, kubeconfig, rbac, netcheck, validate, bundle, lab)
    for command in commands:
        main.add_command(command)


_register()

if __name__ == "__main__":
    main()
