"""Options and output helpers every command shares, so flags mean the same everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from bootstrap import debuglog
from bootstrap.errors import KbootstrapError, UsageError
from bootstrap.spec.kubeadm_config import ignored_documents

F = TypeVar("F", bound=Callable[..., Any])


class EdgeGroup(click.Group):
    """The CLI edge: our typed errors (and OS errors) become one line and an exit code, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KbootstrapError as exc:
            click.echo(f"error: {exc.one_line()}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: files are written atomically, nothing is half-written", err=True)
            ctx.exit(130)
        except (OSError, subprocess.SubprocessError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug, or something we did not foresee: one line, traceback kept
            where = debuglog.record(exc, " ".join(sys.argv))
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} ({where})", err=True)
            ctx.exit(1)


def output_option(fn: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )(fn)


def rootfs_option(fn: F) -> F:
    return click.option(
        "--rootfs",
        type=click.Path(file_okay=False),
        default=None,
        help="Treat DIR as the node's root: every path is read and written under it and no service is started.",
    )(fn)


def emit(output: str, data: Any, text: Callable[[], str] | str) -> None:
    """Print JSON or text; text is only computed when asked for."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        click.echo(text() if callable(text) else text)


def verbose(ctx: click.Context) -> int:
    root = ctx.find_root()
    return int((root.obj or {}).get("verbose", 0))


def err(message: str) -> None:
    click.echo(message, err=True)


def is_tty() -> bool:
    return sys.stdout.isatty()


def with_file_values(given: dict[str, Any], from_file: dict[str, tuple[Any, str]], config: str,
                     purpose: str) -> dict[str, Any]:
    """Options with a kubeadm config document's values (option -> (value, origin)); an option the
    user also set is refused (one place only, as for the spec). Then kubeadm's warning for each
    document this command does not read."""
    out = dict(given)
    for option, (value, origin) in from_file.items():
        if given.get(option) not in (None, "", (), False):
            raise UsageError(f"--{option.replace('_', '-')}: also set by {origin} in {config}",
                             hint="set it in one place only")
        out[option] = value
    for line in ignored_documents(config, purpose):
        click.echo(line, err=True)
    return out
