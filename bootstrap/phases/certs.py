"""`init phase certs`: kubeadm's certificate phases, one child per catalog entry plus `sa`.

The group's own run (`certs all`, and `init`) handles every cert in one pass so all missing keys
are generated in parallel up front; a child run alone does the same work for its one cert. Both
paths call pki.store.ensure_pki, so they write and report the same things.

In a fleet the shared CA material (kubeadm's kubeadm-certs set) is made once on the control machine
under --pki-dir, or read back from the first control plane when the cluster already has it (the
phase's `before` hook); control planes get all of it, etcd-only members the etcd CA, workers
ca.crt only and never a CA private key. Each node's own certificates are then issued on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase
from bootstrap.engine.runner import RunState
from bootstrap.errors import PKIError
from bootstrap.pki import catalog
from bootstrap.pki.store import SA, ensure_pki
from bootstrap.render.kubeconfig import ALL_KUBECONFIGS
from bootstrap.spec.load import validity_warnings
from bootstrap.spec.model import KUBERNETES_DIR, ClusterSpec
from bootstrap.transport.local import LocalTarget

# kubeadm's kubeadm-certs set: what every control plane must share (relative to the cert dir).
SHARED_CA_FILES = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
    "sa.key",
    "sa.pub",
)
SHARED_CA_PHASES = ("ca", "front-proxy-ca", "etcd-ca", "sa")
ETCD_ONLY_FILES = ("etcd/ca.crt", "etcd/ca.key")
ETCD_ONLY_CERTS = ("etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client")


@dataclass
class SharedPKI:
    """A fleet's shared CA files (path relative to the cert dir -> bytes), filled before the certs
    phase. `store` is the control machine's copy (--pki-dir); None outside fleet runs."""

    store: Path | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    source: str = ""


def pki_paths(spec: ClusterSpec) -> list[str]:
    """Every PKI file and kubeconfig a control plane may hold: what the certs and kubeconfig
    phases read, fetched in one round trip."""
    cert_dir = spec.cert_dir.rstrip("/")
    paths = [p for c in catalog.ALL_CERTS for p in (c.cert_path(cert_dir), c.key_path(cert_dir))]
    paths += [f"{cert_dir}/sa.key", f"{cert_dir}/sa.pub"]
    paths += [f"{KUBERNETES_DIR}/{k.file}" for k in ALL_KUBECONFIGS]
    return paths


def prepare_shared(run: RunState, names: list[str]) -> None:
    """Once per fleet run, on the control machine: the shared CAs read back from the first control
    plane when it has them (the cluster's CA wins, and must match ours), else made or reused here."""
    shared = run.slot(SharedPKI)
    if shared.store is None:
        return  # a single node makes its CAs in place
    first = run.first_control_plane
    ctx = run.contexts.get(first) or run.contexts[names[0]]
    cluster = ctx.spec
    cert_dir = cluster.cert_dir.rstrip("/")
    local = LocalTarget(shared.store, name="control-machine")
    remote = run.targets.get(first)  # a host of the run, or (join) the running control plane
    remote_files: dict[str, bytes] = {}
    if remote is not None and remote.live:
        found = remote.read_many([f"{cert_dir}/{rel}" for rel in SHARED_CA_FILES])
        remote_files = {rel: s.content for rel in SHARED_CA_FILES if (s := found[f"{cert_dir}/{rel}"]) is not None}
    local_ca = local.read(f"{cert_dir}/ca.crt")
    if "ca.crt" in remote_files:
        if local_ca is not None and local_ca.content != remote_files["ca.crt"]:
            raise PKIError(
                f"the CA in {shared.store} differs from the one on {first}",
                hint=f"the cluster's CA wins: move {shared.store} away to read it back from {first}",
            )
        if not run.dry_run:
            local.write_many([(f"{cert_dir}/{rel}", data, 0o600, None) for rel, data in remote_files.items()])
        shared.files, shared.source = remote_files, f"read back from {first}"
        return
    store_ctx = RunContext(cluster, local, dry_run=run.dry_run, now=ctx.now)
    ensure_pki(store_ctx, list(SHARED_CA_PHASES))
    store_ctx.flush()
    for rel in SHARED_CA_FILES:
        data = store_ctx.read(f"{cert_dir}/{rel}")
        if data is not None:
            shared.files[rel] = data
    shared.source = f"control machine ({shared.store})"


def _distribute(ctx: RunContext) -> list[str] | None:
    """Fleet runs: put the shared CA material this node's roles get; returns the certs the node
    issues itself (None: all of them)."""
    shared = ctx.run.slot(SharedPKI) if ctx.run is not None else None
    if shared is None or shared.store is None:
        return None
    cert_dir = ctx.spec.cert_dir.rstrip("/")
    ctx.prefetch(pki_paths(ctx.spec))
    if ctx.is_control_plane:
        files, certs = tuple(shared.files), None
    elif ctx.is_etcd:
        files, certs = ETCD_ONLY_FILES, list(ETCD_ONLY_CERTS)
    else:
        files, certs = ("ca.crt",), []
    ctx.ensure_dir(cert_dir, 0o755)
    if any(rel.startswith("etcd/") for rel in files):
        ctx.ensure_dir(f"{cert_dir}/etcd", 0o755)
    crt_mode = ctx.spec.hardening.cert_file_mode
    ctx.ensure_files(
        [
            (f"{cert_dir}/{rel}", shared.files[rel], crt_mode if rel.endswith(".crt") else 0o600)
            for rel in files
            if rel in shared.files
        ],
        detail=f"shared CA material, {shared.source}",
    )
    return certs


def _warn_validity(ctx: RunContext) -> None:
    for line in validity_warnings(ctx.spec):
        ctx.warn(line.split(":", 1)[0], line.split(":", 1)[1].strip())


def run_all(ctx: RunContext) -> None:
    _warn_validity(ctx)
    certs = _distribute(ctx)
    if certs is None:
        ensure_pki(ctx)
    elif certs:
        ensure_pki(ctx, certs)


def _child(name: str) -> Phase:
    def run(ctx: RunContext) -> None:
        _warn_validity(ctx)
        certs = _distribute(ctx)
        if certs is not None and name not in certs:
            ctx.skip(name, "not issued on this node (its roles do not use it)")
            return
        ensure_pki(ctx, [name], parallel=False)

    help_text = catalog.SA_HELP if name == SA else catalog.get(name).help
    return Phase(name, help_text, run=run)


PHASE = Phase(
    "certs",
    catalog.CERTS_HELP,
    run=run_all,
    children=(*(_child(c.name) for c in catalog.ALL_CERTS), _child(SA)),
    before=prepare_shared,
)
