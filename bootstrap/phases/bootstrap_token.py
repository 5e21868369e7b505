"""bootstrap-token: the join token's Secret, the RBAC that lets bootstrapping kubelets post and
auto-approve CSRs and rotate their certificates, and kube-public/cluster-info with its anonymous
read access (kubeadm phases/bootstraptoken), on the first control plane.

kubeadm makes a fresh 24 h token on every init. Here a token that is still valid for a while is
kept (a rerun changes nothing): the config's bootstrapTokens when given, else kubeadm's default
token. The workers of a fleet join with it (phases/worker_join.py), and `join -i` finds or makes one
the same way. Its secret is never printed or logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import FIRST_CONTROL_PLANE, Phase
from bootstrap.engine.result import Status
from bootstrap.engine.runner import RunState
from bootstrap.errors import KbootstrapError, PhaseError
from bootstrap.join import tokens as bt
from bootstrap.kube.api import ClusterAPI
from bootstrap.phases.cluster_api import ADMIN_CONF, apply_objects, cluster_api, offline, open_api
from bootstrap.render.apiobjects import bootstraptoken
from bootstrap.render.kubeconfig import parse_kubeconfig

# A token that expires sooner than this is not handed to a joining node: make a new one.
MIN_REMAINING = timedelta(hours=1)
FLEET_TOKEN_DESCRIPTION = "Bootstrap token for nodes joined by `kbootstrap join -i`"


@dataclass
class JoinToken:
    """The token this run's joining nodes use (a RunState slot)."""

    token: bt.Token | None = None
    given: bool = False  # the user's (--token): registered if the cluster does not know it
    note: str = ""  # how it was found: "kept", "created"
    ca_pem: bytes = b""  # the cluster CA, for the nodes' bootstrap kubeconfig
    tokens: list[bt.BootstrapToken] = field(default_factory=list)


def usable(t: bt.BootstrapToken, now: datetime) -> bool:
    """Authenticates bootstrapping kubelets of the default group and stays valid a while longer."""
    return ("authentication" in t.usages and bt.DEFAULT_GROUPS[0] in t.groups
            and (t.expires is None or t.expires - now > MIN_REMAINING))


def existing_tokens(api: ClusterAPI) -> dict[str, bt.BootstrapToken]:
    """token id -> token, for every well-formed bootstrap-token Secret."""
    out = {}
    for secret in api.list("v1", "Secret", bt.NAMESPACE, field_selector=f"type={bt.SECRET_TYPE}"):
        try:
            t = bt.from_secret(secret)
        except KbootstrapError:
            continue  # not ours to judge; kubeadm's token list skips it too
        out[t.token.id] = t
    return out


def same_token(want: bt.BootstrapToken, have: bt.BootstrapToken, now: datetime) -> bool:
    """The Secret already says what we would write, and has not run out: keep it as it is."""
    return (have.token == want.token and have.description == want.description
            and set(have.usages) == set(want.usages) and tuple(have.groups) == tuple(want.groups)
            and (have.expires is None) == (want.expiration(now) is None)
            and (have.expires is None or have.expires - now > MIN_REMAINING))


def init_tokens(ctx: RunContext, existing: dict[str, bt.BootstrapToken], now: datetime) -> list[bt.BootstrapToken]:
    """The config's tokens, else kubeadm's default token: a usable one already there, or a new one."""
    given = bootstraptoken.spec_tokens(ctx.spec)
    if given:
        return given
    description = bootstraptoken.INIT_DEFAULT_TOKEN_DESCRIPTION
    kept = [t for t in existing.values() if t.description == description and usable(t, now)]
    if kept:
        return [min(kept, key=lambda t: t.token.id)]
    return [bootstraptoken.default_init_token(bt.generate_token(), from_config_file=False)]


def run(ctx: RunContext) -> None:
    assert ctx.run is not None
    now = datetime.now(UTC)
    ca = ctx.read(f"{ctx.spec.cert_dir.rstrip('/')}/ca.crt")
    admin = ctx.read(ADMIN_CONF)
    offline_why = offline(ctx)
    if ca is None or admin is None:
        if offline_why is not None:
            ctx.skip("bootstrap token", f"{offline_why}; no ca.crt or admin.conf to render cluster-info from")
            return
        raise PhaseError(f"no ca.crt or admin.conf on {ctx.name}", hint="run the certs and kubeconfig phases first")
    server = parse_kubeconfig(admin, f"{ctx.name}:{ADMIN_CONF}").server
    existing = existing_tokens(cluster_api(ctx)) if offline_why is None else {}
    tokens = init_tokens(ctx, existing, now)
    objects = bootstraptoken.bootstrap_token_objects(ctx.spec, tokens, ca, now, server=server)
    for t in tokens:
        have = existing.get(t.token.id)
        if have is not None and same_token(t, have, now):
            objects = [o for o in objects if o["metadata"]["name"] != t.token.secret_name]
            ctx.record(f"Secret kube-system/{t.token.secret_name}", Status.UNCHANGED,
                       f"token {t.token.id} valid until {bt.rfc3339(have.expires) if have.expires else 'forever'}")
    apply_objects(ctx, objects)
    joining = ctx.run.slot(JoinToken)
    joining.tokens, joining.ca_pem = tokens, ca
    default = next((t for t in tokens if usable(t, now) or offline_why), None)
    if default is not None:
        joining.token = default.token
        joining.note = f"token {default.token.id} (its secret is never printed)"


def join_token(run: RunState, *, description: str = FLEET_TOKEN_DESCRIPTION) -> bt.Token:
    """The token joining nodes use: this run's (bootstrap-token ran), else a usable one from the
    cluster, else a new 24 h one registered now."""
    joining = run.slot(JoinToken)
    if joining.token is not None and not joining.given:
        return joining.token
    if run.dry_run or not all(t.live for t in run.targets.values()):
        if joining.token is not None:
            return joining.token
        joining.token, joining.note = bt.generate_token(), "a new token (not registered: no API server here)"
        return joining.token
    api = open_api(run)
    now = datetime.now(UTC)
    existing = existing_tokens(api)
    if joining.token is not None:  # --token: the user's, made known to the cluster if it is not
        if joining.token.id not in existing:
            api.apply(bt.BootstrapToken(joining.token, description).secret(now))
            joining.note = f"registered the given token {joining.token.id} (24h) on {api.server}"
        else:
            joining.note = f"the given token {joining.token.id} is known to the cluster"
        joining.given = False
        return joining.token
    found = [t for t in existing.values() if usable(t, now)]
    if found:
        best = max(found, key=lambda t: (t.description == description, t.expires or datetime.max.replace(tzinfo=UTC)))
        joining.token, joining.note = best.token, f"kept token {best.token.id}, valid while the node joins"
        return best.token
    new = bt.BootstrapToken(bt.generate_token(), description)
    api.apply(new.secret(now))
    joining.token, joining.note = new.token, f"created token {new.token.id} (24h) on {api.server}"
    return new.token


PHASE = Phase("bootstrap-token", "Generates bootstrap tokens used to join a node to a cluster", run,
              hosts=FIRST_CONTROL_PLANE, needs_api_server=True)
