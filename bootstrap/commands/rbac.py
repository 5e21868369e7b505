"""`kbootstrap rbac ACCESS.yaml`: render who-may-do-what as RBAC objects and/or an ABAC policy file.

Which one follows the API server's --authorization-mode (the flag, else the --config's apiServer
extraArgs, else kubeadm's Node,RBAC): RBAC objects go to stdout as YAML (`kubectl apply -f -`);
with ABAC in the mode, the policy (one JSON object per line) goes to --abac-file, or to stdout when
RBAC is not in the mode. Everything ABAC grants beyond the RBAC rules is printed as a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from bootstrap.commands.common import err
from bootstrap.errors import UsageError
from bootstrap.render.rbac import abac_policy, load_access, rbac_yaml
from bootstrap.spec.load import build_spec

DEFAULT_MODE = "Node,RBAC"


def _write_atomic(path: Path, text: str) -> None:
    """The API server reads this file at start: never leave it half-written."""
    tmp = path.with_name(f".{path.name}.kbootstrap-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def authorization_modes(flag: str | None, config: str | None) -> list[str]:
    if flag:
        text = flag
    elif config:
        defaults = {"advertise_address": ("127.0.0.1", "default"), "node.name": ("localhost", "default")}
        spec = build_spec({}, config, defaults=defaults)
        text = next((a.value for a in spec.api_server.extra_args if a.name == "authorization-mode"), DEFAULT_MODE)
    else:
        text = DEFAULT_MODE
    modes = [m.strip() for m in text.split(",") if m.strip()]
    known = {"AlwaysAllow", "AlwaysDeny", "ABAC", "Webhook", "RBAC", "Node"}
    bad = [m for m in modes if m not in known]
    if bad:
        raise UsageError(f"--authorization-mode: unknown mode {bad[0]!r}", hint=", ".join(sorted(known)))
    return modes


@click.command("rbac", help="Render RBAC objects (and an ABAC policy file) from an access description; "
               "see docs/ha.md for its format")
@click.argument("access_file", type=click.Path(dir_okay=False))
@click.option("--user", "user", default=None, help="Only what applies to this user (from the description's users).")
@click.option("--authorization-mode", default=None,
              help=f"The API server's authorizers [default: the --config's, else {DEFAULT_MODE}].")
@click.option("--abac-file", type=click.Path(dir_okay=False), default=None,
              help="Where to write the ABAC policy (JSON lines) when the mode includes ABAC.")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Path to a kubeadm configuration file.")
def rbac(access_file: str, user: str | None, authorization_mode: str | None, abac_file: str | None,
         config: str | None) -> None:
    path = Path(access_file)
    if not path.is_file():
        raise UsageError(f"{access_file} does not exist", hint="see docs/ha.md for the access description format")
    access = load_access(path.read_text(), access_file)
    if user:
        access = access.for_user(user)
        if not access.bindings:
            raise UsageError(f"no binding applies to {user!r} or the user's groups")
    modes = authorization_modes(authorization_mode, config)
    with_rbac, with_abac = "RBAC" in modes, "ABAC" in modes
    if not with_rbac and not with_abac:
        raise UsageError(f"--authorization-mode {','.join(modes)} has neither RBAC nor ABAC: nothing to render")
    if with_rbac and with_abac and not abac_file:
        raise UsageError("the mode has both RBAC and ABAC", hint="pass --abac-file PATH for the ABAC policy")
    if with_abac:
        policy = abac_policy(access)
        for w in policy.warnings:
            err(f"warning: ABAC: {w}")
        if abac_file:
            _write_atomic(Path(abac_file), policy.jsonl())
            err(f"wrote {len(policy.lines)} ABAC policies to {abac_file} (--authorization-policy-file)")
        else:
            click.echo(policy.jsonl(), nl=False)
    if with_rbac:
        click.echo(rbac_yaml(access), nl=False)
