"""`kbootstrap join`: one node (kubeadm join's flags and semantics), or new inventory hosts (-i --limit)."""

from __future__ import annotations

from typing import Any

import click

from bootstrap.commands.common import emit, with_file_values
from bootstrap.commands.fleet import fleet_options, run_and_report, split_list
from bootstrap.commands.init import fleet_option_set, spec_options
from bootstrap.commands.report import node_summary, phase_lines
from bootstrap.engine.context import RunContext
from bootstrap.engine.runner import run_host_phases
from bootstrap.errors import UsageError
from bootstrap.join.copycerts import parse_certificate_key
from bootstrap.join.discovery import DEFAULT_TIMEOUT
from bootstrap.join.node import JoinRequest, join_phases, plan_join
from bootstrap.join.tokens import parse_token
from bootstrap.spec.kubeadm_config import cluster_documents_values, join_request
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.local import LocalTarget
from bootstrap.workflow.join import join_fleet


def _timeout(text: str | None) -> float:
    if not text:
        return DEFAULT_TIMEOUT
    from bootstrap.spec.load import parse_duration

    return parse_duration(text, "--discovery-timeout").total_seconds()


def request_from(params: dict[str, Any]) -> JoinRequest:
    token = params.get("token")
    discovery = params.get("discovery_token") or token
    tls = params.get("tls_bootstrap_token") or discovery  # kubeadm's SetDefaults_Discovery
    key = params.get("certificate_key")
    return JoinRequest(
        endpoint=params.get("endpoint"),
        discovery_token=parse_token(discovery) if discovery else None,
        tls_bootstrap_token=parse_token(tls) if tls else None,
        ca_hashes=tuple(params.get("discovery_token_ca_cert_hash") or ()),
        unsafe_skip_ca_verification=bool(params.get("discovery_token_unsafe_skip_ca_verification")),
        discovery_file=params.get("discovery_file"),
        control_plane=bool(params.get("control_plane")),
        certificate_key=parse_certificate_key(key) if key else None,
        timeout=_timeout(params.get("discovery_timeout")),
    )


def with_join_configuration(params: dict[str, Any], config: str) -> dict[str, Any]:
    """params with the JoinConfiguration's discovery and control-plane values."""
    return with_file_values(params, join_request(config), config, "join")


@click.command(
    "join",
    help="Run this on any machine you wish to join an existing cluster; with -i INVENTORY "
    "--limit HOSTS, join the new inventory hosts over SSH.",
)
@click.argument("endpoint", required=False, metavar="[API_SERVER_ENDPOINT]")
@click.option(
    "--token",
    help="Use this token for both discovery-token and tls-bootstrap-token when those values are not provided.",
)
@click.option(
    "--discovery-token",
    help="For token-based discovery, the token used to validate cluster information fetched from the API server.",
)
@click.option(
    "--tls-bootstrap-token",
    help="Specify the token used to temporarily authenticate with the Kubernetes Control Plane while joining the node.",
)
@click.option(
    "--discovery-token-ca-cert-hash",
    multiple=True,
    help="For token-based discovery, validate that the "
    'root CA public key matches this hash (format: "sha256:<hex>"). Repeatable.',
)
@click.option(
    "--discovery-token-unsafe-skip-ca-verification",
    is_flag=True,
    help="For token-based discovery, allow joining without --discovery-token-ca-cert-hash pinning.",
)
@click.option(
    "--discovery-file", help="For file-based discovery, a kubeconfig file from which to load cluster information."
)
@click.option("--discovery-timeout", help="How long to wait for discovery (Go duration). [default: 5m0s]")
@click.option("--control-plane", is_flag=True, help="Create a new control plane instance on this node.")
@click.option("--certificate-key", help="Use this key to decrypt the certificate secrets uploaded by init.")
@click.option("--skip-phases", help="Phases to skip, comma-separated.")
@click.option("--limit", help="With -i: the new hosts to join, comma-separated (Kubespray's scale.yml --limit).")
@spec_options
@fleet_option_set
def join(**params: Any) -> None:
    if params.get("inventory"):
        limit = split_list(params.get("limit"))
        if not limit:
            raise UsageError(
                "join -i needs --limit HOST[,HOST]: the new hosts", hint="hosts outside --limit are the running cluster"
            )
        if params.get("transport") == "ansible":
            from bootstrap.commands.ansible import join_ansible

            join_ansible(params, list(limit))
            return
        opts = fleet_options(params, limit=limit)
        run_and_report(opts, params.get("output", "text"), "kbootstrap join", join_fleet, hosts=list(limit))
        return
    if params.get("limit"):
        raise UsageError("--limit needs -i INVENTORY")
    config = params.get("config")
    if config:
        params = with_join_configuration(params, config)
    req = request_from(params)  # token, hash and key formats: before anything else
    spec = build_spec(params, config, purpose="join")
    target = LocalTarget(params.get("rootfs") or "/", name=spec.node.name)

    def with_cluster(documents: list[str]) -> ClusterSpec:
        cluster = cluster_documents_values(documents, "the cluster's kubeadm-config and kubelet-config")
        return build_spec(params, config, purpose="join", defaults=cluster)

    plan = plan_join(req, spec, target, with_cluster=with_cluster)  # discovery and downloads; nothing written yet
    ctx = RunContext(plan.spec, target, dry_run=bool(params.get("dry_run")))
    skip = set(split_list(params.get("skip_phases")))
    output = params.get("output", "text")

    def show(host: str, result: Any) -> None:
        for line in phase_lines(result, ctx.dry_run, 0):
            click.echo(line)

    report = run_host_phases(ctx, join_phases(plan), skip, on_phase=show if output == "text" else None)

    def text() -> str:
        lines = [node_summary(report, ctx.dry_run)]
        if not report.failed and not ctx.dry_run:
            lines.append(
                f"This node has joined the cluster at {plan.info.server}: the kubelet finishes the TLS "
                "bootstrap with bootstrap-kubelet.conf."
            )
        return "\n".join(lines)

    emit(output, {"hosts": {report.host: report.to_json()}, "dry_run": ctx.dry_run, "server": plan.info.server}, text)
    if report.failed:
        raise SystemExit(1)
