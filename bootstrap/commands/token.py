"""`kbootstrap token generate|create|list|delete`: kubeadm's bootstrap token commands.

Tokens live as Secrets in kube-system, so create/list/delete talk to the API server named by
--kubeconfig (admin.conf by default), as kubeadm does. Only `generate` and `create` print a token
secret, because printing it is what the user asked for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from bootstrap.commands.common import output_option
from bootstrap.errors import UsageError
from bootstrap.join.apiclient import APIClient, APIError
from bootstrap.join.copycerts import parse_certificate_key
from bootstrap.join.tokens import (
    DEFAULT_GROUPS,
    DEFAULT_USAGES,
    LIST_HEADER,
    BootstrapToken,
    Token,
    from_secret,
    generate_token,
    list_row,
    parse_token,
    parse_ttl,
    tabwrite,
    token_id_of,
    validate_groups,
    validate_usages,
)
from bootstrap.pki.authority import spki_sha256
from bootstrap.pki.store import parse_cert
from bootstrap.render.kubeconfig import parse_kubeconfig

ADMIN_CONF = "/etc/kubernetes/admin.conf"


def _kubeconfig_option(fn: Any) -> Any:
    return click.option(
        "--kubeconfig",
        default=ADMIN_CONF,
        show_default=True,
        help="The kubeconfig file to use when talking to the cluster.",
    )(fn)


def _read_kubeconfig(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"failed to load admin kubeconfig: open {path}: {exc.strerror}",
            hint="pass --kubeconfig, or run on a control-plane node",
        ) from None


def join_command(kubeconfig: bytes, where: str, token: Token, certificate_key: str | None = None) -> str:
    """The command `kubeadm join` itself accepts: endpoint from the kubeconfig, the CA's SPKI hash."""
    kc = parse_kubeconfig(kubeconfig, where)
    if kc.ca_pem is None:
        raise UsageError(f"{where} has no certificate-authority-data", hint="the join command needs the CA hash")
    endpoint = kc.server.removeprefix("https://").rstrip("/")
    ca_hash = spki_sha256(parse_cert(kc.ca_pem, f"{where} (certificate-authority-data)"))
    cmd = f"kubeadm join {endpoint} --token {token} --discovery-token-ca-cert-hash {ca_hash}"
    if certificate_key:
        cmd += f" --control-plane --certificate-key {certificate_key}"
    return cmd


@click.group("token", help="Manage bootstrap tokens.")
def token() -> None:
    pass


@token.command("generate", help="Generate and print a bootstrap token, but do not create it on the server.")
def generate() -> None:
    click.echo(str(generate_token()))


@token.command("create", help="Create bootstrap tokens on the server.")
@click.argument("token_value", metavar="[TOKEN]", required=False)
@click.option(
    "--ttl",
    default="24h0m0s",
    show_default=True,
    help="The duration before the token is automatically deleted (e.g. 1s, 2m, 3h). 0 means never.",
)
@click.option(
    "--usages",
    default=",".join(DEFAULT_USAGES),
    show_default=True,
    help="Describes the ways in which this token can be used (signing, authentication).",
)
@click.option(
    "--groups",
    default=",".join(DEFAULT_GROUPS),
    show_default=True,
    help="Extra groups that this token will authenticate as when used for authentication.",
)
@click.option("--description", default="", help="A human friendly description of how this token is used.")
@click.option(
    "--print-join-command",
    is_flag=True,
    help="Print the full 'kubeadm join' flag needed to join the cluster using the token.",
)
@click.option(
    "--certificate-key",
    help="When used together with '--print-join-command', print the full "
    "'kubeadm join' flag needed to join the cluster as a control-plane.",
)
@click.option("--dry-run", is_flag=True, help="Print the Secret that would be created; create nothing.")
@_kubeconfig_option
def create(
    token_value: str | None,
    ttl: str,
    usages: str,
    groups: str,
    description: str,
    print_join_command: bool,
    certificate_key: str | None,
    dry_run: bool,
    kubeconfig: str,
) -> None:
    # Everything is checked before the API server is contacted.
    tok = parse_token(token_value) if token_value else generate_token()
    bt = BootstrapToken(
        tok, description, parse_ttl(ttl), None, validate_usages(usages.split(",")), validate_groups(groups.split(","))
    )
    if certificate_key is not None:
        if not print_join_command:
            raise UsageError("--certificate-key can only be used together with --print-join-command")
        parse_certificate_key(certificate_key)
    config = _read_kubeconfig(kubeconfig)
    secret = bt.secret(datetime.now(UTC))
    if dry_run:
        click.echo(f"[dryrun] Would create Secret kube-system/{tok.secret_name}:", err=True)
        click.echo(yaml.safe_dump(secret, sort_keys=False).rstrip(), err=True)
    else:
        client = APIClient.from_kubeconfig(config, kubeconfig)
        try:
            client.create_secret(secret)
        except APIError as exc:
            if exc.status == 409:
                raise UsageError(f"a token with id {tok.id!r} already exists") from None
            raise
    click.echo(join_command(config, kubeconfig, tok, certificate_key) if print_join_command else str(tok))


@token.command("list", help="List bootstrap tokens on the server.")
@_kubeconfig_option
@output_option
def list_tokens(kubeconfig: str, output: str) -> None:
    client = APIClient.from_kubeconfig(_read_kubeconfig(kubeconfig), kubeconfig)
    now = datetime.now(UTC)
    rows, tokens = [LIST_HEADER], []
    for secret in client.list_token_secrets():
        try:
            bt = from_secret(secret)
        except UsageError as exc:
            click.echo(exc.message, err=True)
            continue
        rows.append(list_row(bt, now))
        tokens.append(
            {
                "token": str(bt.token),
                "description": bt.description,
                "usages": list(bt.usages),
                "groups": list(bt.groups),
                "expires": list_row(bt, now)[2],
            }
        )
    if output == "json":
        click.echo(json.dumps({"tokens": tokens}, indent=2))
    else:
        click.echo(tabwrite(rows))


@token.command("delete", help="Delete bootstrap tokens on the server (token ids or whole tokens).")
@click.argument("tokens", nargs=-1, required=True, metavar="[TOKEN-VALUE]...")
@_kubeconfig_option
def delete(tokens: tuple[str, ...], kubeconfig: str) -> None:
    ids = [token_id_of(t) for t in tokens]  # all checked before the first deletion
    client = APIClient.from_kubeconfig(_read_kubeconfig(kubeconfig), kubeconfig)
    for token_id in ids:
        try:
            client.delete_secret("kube-system", f"bootstrap-token-{token_id}")
        except APIError as exc:
            raise UsageError(f"failed to delete bootstrap token {token_id!r}: {exc.message}") from None
        click.echo(f'bootstrap token "{token_id}" deleted')
