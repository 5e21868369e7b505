"""What `join -i --limit NEW` does differently from init (Kubespray's scale.yml), as phases.

The join tree is init's with edits (phases/tree.py): control planes get the kubeconfigs
`kubeadm join --control-plane` writes (no super-admin.conf); new etcd members JOIN the running
cluster ONE AT A TIME (kubeadm#1353/#1712): `member add --learner` through a healthy existing
member, the unit with `--initial-cluster-state=existing` and members = current + self, start,
promote, healthy; workers join through TLS bootstrap (phases/worker_join.py), as in init.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import ETCD_MEMBERS, Phase
from bootstrap.engine.result import Status
from bootstrap.engine.runner import RunState
from bootstrap.errors import PhaseError, PKIError
from bootstrap.etcd import members as etcd
from bootstrap.join import copycerts
from bootstrap.join.apiclient import APIClient
from bootstrap.phases import etcd as etcd_phase
from bootstrap.phases.certs import SharedPKI, prepare_shared
from bootstrap.phases.cluster_api import open_api
from bootstrap.render.etcd import ETCD_SYSTEMD_UNIT_PATH
from bootstrap.spec.endpoint import url_host
from bootstrap.spec.model import MANIFESTS_DIR, ClusterSpec, EtcdMember, EtcdMode

JOIN_ROLL = "etcd-join"  # one new member at a time


@dataclass
class JoinState:
    """The running cluster a join goes through, shared by the join's hooks and phases."""

    source_cp: str = ""  # the running control plane the cluster is read from
    existing_etcd: list[str] = field(default_factory=list)  # running members, in inventory order
    etcd_urls: dict[str, str] = field(default_factory=dict)  # running member -> its client URL
    # Over SSH the control machine runs etcdctl on a healthy member. The Ansible transport sees one
    # host per task, so there the joining node reaches the cluster itself, with its own etcd client
    # certificate, as `kubeadm join --control-plane` does.
    etcd_from_node: bool = False
    etcd_source: str | None = None


# ---- etcd: one member at a time, as a learner first -----------------------------------------------
def pick_etcd_source(run: RunState, names: list[str]) -> None:
    """Before the members join: the first running member that answers healthy (SSH: the control
    machine asks through it; Ansible: each node asks itself, in its own step)."""
    join = run.slot(JoinState)
    spec = run.contexts[names[0]].spec
    if spec.etcd_mode != EtcdMode.HOST or spec.etcd_external is not None or join.etcd_from_node:
        return
    errors = []
    for name in join.existing_etcd:
        target = run.targets.get(name)
        if target is None:
            errors.append(f"{name}: not reachable")
            continue
        result = etcd.etcdctl_on(target, spec.cert_dir)("endpoint health")
        if result.ok:
            join.etcd_source = name
            run.result.notes["etcd_joined_through"] = name
            return
        errors.append(f"{name}: {etcd.last_line(result)}")
    raise PhaseError(
        "no healthy etcd member to join through: " + "; ".join(errors)
        if errors
        else "the inventory has no existing etcd member",
        hint="fix the existing etcd cluster first",
    )


def run_etcd_join(ctx: RunContext) -> None:
    if ctx.spec.etcd_external is not None:
        ctx.skip("etcd", "external etcd: no local member")
        return
    if ctx.spec.etcd_mode != EtcdMode.HOST:
        raise PhaseError(
            "joining stacked etcd as a static Pod needs a running kubelet",
            hint="set etcd_mode: host (Kubespray's default) for fleet joins",
        )
    assert ctx.run is not None
    join = ctx.run.slot(JoinState)
    with ctx.rolling(JOIN_ROLL):
        if join.etcd_from_node:
            _join_from_node(ctx, join)
            return
        assert join.etcd_source is not None
        source = ctx.run.targets[join.etcd_source]
        join_member(ctx, etcd.etcdctl_on(source, ctx.spec.cert_dir))


def _join_from_node(ctx: RunContext, join: JoinState) -> None:
    """Join through the first existing member that answers healthy from the joining node itself."""
    errors = []
    for name in join.existing_etcd:
        etcdctl = etcd.etcdctl_on(ctx.target, ctx.spec.cert_dir, endpoints=join.etcd_urls[name])
        result = etcdctl("endpoint health")
        if result.ok:
            join.etcd_source = name
            join_member(ctx, etcdctl)
            return
        errors.append(f"{name}: {etcd.last_line(result)}")
    if ctx.dry_run:
        # A fresh node has no etcd client or certificates before a real run: nothing to ask with.
        ctx.record(f"etcd member {ctx.spec.node.name}", Status.CREATED,
                   f"would be added as a learner through a healthy member ({', '.join(join.existing_etcd)})")
        return
    raise PhaseError(
        "no healthy etcd member answers from this node: " + "; ".join(errors)
        if errors
        else "the inventory has no existing etcd member",
        hint="fix the existing etcd cluster, or the network between it and the new member (port 2379)",
    )


def join_member(ctx: RunContext, etcdctl: etcd.Etcdctl) -> None:
    """Add this node as a learner (if not yet a member), write its etcd unit with --initial-cluster
    = existing members + self and state `existing`, start it, promote it, wait until the whole
    cluster is healthy. Safe to rerun after a failure at any step."""
    spec = ctx.spec
    name = spec.node.name
    peer_url = f"https://{url_host(spec.advertise_address)}:2380"
    members = etcd.member_list(etcdctl)
    mine = next((m for m in members if peer_url in m.peer_urls), None)
    if mine is None:
        if ctx.dry_run:
            ctx.record(f"etcd member {name}", Status.CREATED, f"would add {peer_url} as a learner")
            return
        result = etcd.add_learner(etcdctl, name, peer_url)
        if not result.ok:
            raise PhaseError(f"etcd member add {name} failed: {etcd.last_line(result)}")
        ctx.record(f"etcd member {name}", Status.CREATED, f"added {peer_url} as a learner")
        members = etcd.member_list(etcdctl)
        mine = next((m for m in members if peer_url in m.peer_urls), None)
        if mine is None:
            raise PhaseError(f"etcd member {name} was added but is not listed")
    else:
        ctx.record(f"etcd member {name}", Status.UNCHANGED, "learner" if mine.is_learner else "voting member")
    existing = {m.name: m.peer_urls[0] for m in members if m.name and m.peer_urls and m.peer_urls[0] != peer_url}
    cluster = tuple(EtcdMember(name=n, peer_url=u) for n, u in sorted({**existing, name: peer_url}.items()))
    unit_exists = ctx.state(_etcd_file(spec)) is not None
    if mine.name and not mine.is_learner and unit_exists:
        # Joined earlier: the --initial-cluster flags are ignored once the data dir exists, so the
        # unit is left as written then instead of restarting etcd for a cosmetic difference.
        ctx.record(_etcd_file(spec), Status.UNCHANGED, "member already joined")
    else:
        sub = dataclasses.replace(
            ctx, spec=spec.model_copy(update={"etcd_members": cluster, "etcd_initial_cluster_state": "existing"})
        )
        etcd_phase.run_local(sub)  # shares this context's pending writes, overlay and report
        ctx.flush()
    if ctx.dry_run:
        return
    if mine.is_learner:
        etcd.promote(etcdctl, mine)
        ctx.record(f"etcd member {name}", Status.UPDATED, "promoted to a voting member")
    health = etcd.wait_all_healthy(etcdctl)
    ctx.record("etcd health", Status.UNCHANGED, health.describe())


def _etcd_file(spec: ClusterSpec) -> str:
    return ETCD_SYSTEMD_UNIT_PATH if spec.etcd_mode == EtcdMode.HOST else f"{MANIFESTS_DIR}/etcd.yaml"


# ---- control planes: the shared CAs from the kubeadm-certs Secret (--certificate-key) -------------
@dataclass
class CertificateKey:
    """join -i --certificate-key: new control planes get the shared CAs from kubeadm-certs."""

    key_hex: str = ""


def prepare_shared_for_join(run: RunState, names: list[str]) -> None:
    """Before the certs phase of a join: with --certificate-key the shared CA files come from the
    kubeadm-certs Secret, read with a bootstrap token (kubeadm's RBAC: kubeadm:kubeadm-certs) and
    decrypted with the key; else they are copied from the running control plane (over SSH)."""
    key = run.slot(CertificateKey).key_hex
    if not key or not any(run.nodes[n].is_control_plane for n in names):
        prepare_shared(run, names)
        return
    from bootstrap.phases.bootstrap_token import join_token

    shared = run.slot(SharedPKI)
    spec = run.contexts[names[0]].spec
    cert_dir = spec.cert_dir.rstrip("/")
    source = run.targets.get(run.first_control_plane)
    ca = source.read(f"{cert_dir}/ca.crt") if source is not None else None
    if ca is None:
        raise PhaseError(f"no {cert_dir}/ca.crt on {run.first_control_plane}: cannot verify the API server")
    if run.dry_run:
        shared.files, shared.source = {"ca.crt": ca.content}, "the kubeadm-certs Secret (dry run: not read)"
        return
    token = join_token(run)
    api = open_api(run)  # the server that answered; the token client talks to the same one
    client = APIClient(api.server, ca_pem=ca.content, token=str(token))
    secret = client.get_secret(copycerts.NAMESPACE, copycerts.SECRET_NAME)
    wanted = {path: name for path, name in copycerts.files_to_transfer(spec).items() if path.startswith(cert_dir + "/")}
    files = copycerts.decrypt_secret(secret, copycerts.parse_certificate_key(key), wanted)
    shared.files = {path.removeprefix(cert_dir + "/"): data for path, data in files.items()}
    if shared.files.get("ca.crt") != ca.content:
        raise PKIError("the CA in the kubeadm-certs Secret is not the cluster's",
                       hint="upload the certificates again from a control plane of this cluster")
    shared.source = f"the kubeadm-certs Secret on {api.server} (--certificate-key)"


ETCD_JOIN = Phase(
    "etcd",
    "Add each new local etcd member to the running cluster: a learner first, one at a time",
    None,
    children=(Phase("local", "Join the local etcd member as a learner, start it, promote it", run_etcd_join),),
    hosts=ETCD_MEMBERS,
    before=pick_etcd_source,
)

def etcd_client_url(ip: str) -> str:
    return f"https://{url_host(ip)}:2379"
