"""`join -i INV --limit HOSTS` (Kubespray's scale.yml): the hosts in --limit are new, the others are
the running cluster. The new hosts go through the join tree (phases/tree.py JOIN); the shared CAs
are read back from the first existing control plane; new etcd members join one at a time."""

from __future__ import annotations

from pathlib import Path

from bootstrap.engine.result import RunResult
from bootstrap.engine.runner import run_tree
from bootstrap.errors import TransportError, UsageError
from bootstrap.join.copycerts import parse_certificate_key
from bootstrap.join.tokens import parse_token
from bootstrap.phases.bootstrap_token import JoinToken
from bootstrap.phases.certs import SharedPKI
from bootstrap.phases.join import CertificateKey, JoinState, etcd_client_url
from bootstrap.phases.tree import JOIN
from bootstrap.spec.inventory import Inventory
from bootstrap.workflow.options import Events, FleetOptions
from bootstrap.workflow.session import check_limit, close, connect, one_line, plan_fleet, run_state

JOINED_THROUGH = "etcd_joined_through"


def join_state(inv: Inventory, limit: tuple[str, ...] | list[str]) -> JoinState:
    """Who the new hosts join through; refuses a --limit that leaves no running cluster."""
    existing_cps = [h for h in inv.control_planes() if h.name not in limit]
    if not existing_cps:
        raise UsageError(
            "--limit names every control plane: there is no running cluster to join",
            hint="create the cluster with `kbootstrap init -i` first",
        )
    existing_etcd = [h for h in inv.hosts if h.is_etcd and h.name not in limit]
    return JoinState(
        source_cp=existing_cps[0].name,
        existing_etcd=[h.name for h in existing_etcd],
        etcd_urls={h.name: etcd_client_url(h.ip) for h in existing_etcd},
    )


def join_fleet(opts: FleetOptions, events: Events | None = None) -> RunResult:
    events = events or Events()
    if not opts.limit:
        raise UsageError(
            "join -i needs --limit HOST[,HOST]: the new hosts", hint="hosts outside --limit are the running cluster"
        )
    plan = plan_fleet(opts, JOIN)
    # The inventory's warnings (variables not honoured, Ansible's own): said before anything runs.
    events.warn_all(plan.inv.warnings)
    check_limit(plan.inv, opts.limit)
    join = join_state(plan.inv, opts.limit)
    if plan.inv.control_planes()[0].name in opts.limit and not plan.cluster.control_plane_endpoint:
        raise UsageError("the inventory's first control plane is being joined: set control_plane_endpoint")
    new = [h.name for h in plan.inv.hosts if h.name in opts.limit]
    helpers = list(dict.fromkeys([join.source_cp, *join.existing_etcd]))
    events.note(f"connecting to {len(new)} new hosts and {len(helpers)} cluster hosts")
    conns = connect(plan.inv, list(dict.fromkeys([*new, *helpers])), opts)
    try:
        source = conns.get(join.source_cp)
        if isinstance(source, Exception) or source is None:
            raise TransportError(
                f"cannot reach {join.source_cp}, the control plane the cluster is read from: "
                f"{one_line(source) if source is not None else 'no connection'}"
            )
        run = run_state(plan, new, conns, opts, events, first_control_plane=join.source_cp)
        run.put_slot(join)
        if opts.certificate_key:
            parse_certificate_key(opts.certificate_key)
            run.put_slot(CertificateKey(opts.certificate_key))
        if opts.token:
            run.put_slot(JoinToken(token=parse_token(opts.token), given=True))
        run.put_slot(SharedPKI(store=Path(plan.pki_dir)))
        result = run_tree(JOIN, run, set(plan.skip), skip_reasons=plan.reasons)
    finally:
        close(conns)
    result.notes.setdefault(JOINED_THROUGH, join.etcd_source)
    return result
