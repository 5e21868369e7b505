"""The `kbootstrap` command line. This is the edge: typed errors become one line + an exit code."""

from __future__ import annotations

import sys
from typing import Any

import click

from bootstrap import __version__
from bootstrap.errors import KbootstrapError


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KbootstrapError as exc:
            click.echo(f"error: {exc.one_line()}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: files are written atomically, nothing is half-written", err=True)
            sys.exit(130)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kbootstrap")
@click.option("-v", "--verbose", count=True, help="More output (repeat for more).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """kbootstrap: provision and bootstrap Kubernetes clusters, kubeadm-exact, from one node to a fleet."""
    ctx.obj = {"verbose": verbose}


def _register() -> None:
    from bootstrap.commands.init import init

    main.add_command(init)
    try:
        from bootstrap.commands.certs import certs

        main.add_command(certs)
    except ImportError:  # pragma: no cover - during development only
        pass
    try:
        from bootstrap.lab.cli import lab

        main.add_command(lab)
    except ImportError:  # pragma: no cover
        pass


_register()

if __name__ == "__main__":
    main()
