"""`init phase certs`: kubeadm's certificate phases, one child per catalog entry plus `sa`.

The group's own run (`certs all`, and `init`) handles every cert in one pass so all missing keys
are generated in parallel up front; a child run alone does the same work for its one cert. Both
paths call pki.store.ensure_pki, so they write and report the same things.
"""

from __future__ import annotations

from bootstrap.phases.base import Phase
from bootstrap.pki import catalog
from bootstrap.pki.store import SA, ensure_pki
from bootstrap.workflow.context import RunContext


def run_all(ctx: RunContext) -> None:
    ensure_pki(ctx)


def _child(name: str) -> Phase:
    def run(ctx: RunContext) -> None:
        ensure_pki(ctx, [name], parallel=False)

    help_text = catalog.SA_HELP if name == SA else catalog.get(name).help
    return Phase(name, help_text, run=run)


PHASE = Phase(
    "certs",
    catalog.CERTS_HELP,
    run=run_all,
    children=(*(_child(c.name) for c in catalog.ALL_CERTS), _child(SA)),
)
