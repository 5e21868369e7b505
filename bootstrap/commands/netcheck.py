"""`kbootstrap netcheck`: the DNS, ping and port matrix over SSH; Netchecker for a running cluster."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import click

from bootstrap.commands.common import emit, output_option
from bootstrap.errors import KbootstrapError, RequirementError, UsageError
from bootstrap.render.netchecker import (
    AGENT_LABELS,
    SERVER_PORT,
    SERVICE,
    ConnectivityReport,
    NetcheckerOptions,
    parse_connectivity,
    proxy_path,
    render_manifests,
)
from bootstrap.render.podprobe import ProbeOptions
from bootstrap.validate.podnetwork import PodNetworkReport

KUBECTL_TIMEOUT = 20


@click.command("netcheck")
@click.option("-i", "--inventory", type=click.Path(dir_okay=False), help="Kubespray hosts.yaml / INI or k0sctl.yaml.")
@click.option("--config", type=click.Path(dir_okay=False), help="kubeadm config file used with init (optional).")
@click.option("--forks", type=click.IntRange(1, 512), default=64, show_default=True, help="Hosts in parallel.")
@click.option("--trust-on-first-use", is_flag=True, help="Accept and record unknown host keys (never changed ones).")
@output_option
@click.option("--in-cluster", is_flag=True, help="Read Netchecker's report through the API server (cluster up).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="kubeconfig for --in-cluster (kubectl's default).")
@click.option("--render-manifests", is_flag=True, help="Print Netchecker's manifests for `kubectl apply -f -`.")
@click.option("--namespace", default=NetcheckerOptions.namespace, show_default=True, help="Netchecker's namespace.")
@click.option("--node-port", type=click.IntRange(30000, 32767), default=NetcheckerOptions.node_port, show_default=True)
@click.option("--report-interval", type=click.IntRange(1), default=NetcheckerOptions.report_interval,
              show_default=True, help="Seconds between agent reports.")
@click.option("--image", "probe_image", metavar="IMAGE",
              help="With --in-cluster: run kbootstrap's own pod-network probe (any image with /bin/busybox) "
                   "instead of reading Netchecker.")
@click.option("--timeout", "probe_timeout", type=click.IntRange(10), default=120, show_default=True,
              help="Seconds the pod-network probe waits for every agent.")
@click.option("--keep", is_flag=True, help="Leave the pod-network probe's namespace in place.")
def netcheck(
    inventory: str | None,
    config: str | None,
    forks: int,
    trust_on_first_use: bool,
    output: str,
    in_cluster: bool,
    kubeconfig: str | None,
    render_manifests: bool,
    namespace: str,
    node_port: int,
    report_interval: int,
    probe_image: str | None,
    probe_timeout: int,
    keep: bool,
) -> None:
    """Prove every node reaches every other: names, ping, and the ports each role serves.

    From every node in parallel, over SSH, with the node's own tools (getent, ping, bash): resolve
    every node's name and the control-plane endpoint, ping every other node, connect to etcd
    (2379/2380), the API server and the kubelet (10250) where they are expected up; ports whose
    service is not running are listed as skipped with the reason. Exit 1 on any failure.

    With --in-cluster, through the API server: Netchecker's report, or with --image kbootstrap's own
    probe, a DaemonSet whose agents resolve each other through cluster DNS, reach a Service and every
    other agent across nodes; the matrix is read through the pod proxy, then the probe is removed.
    """
    opts = NetcheckerOptions(namespace=namespace, node_port=node_port, report_interval=report_interval)
    if render_manifests:
        click.echo(_render(opts), nl=False)
        return
    if probe_image and not in_cluster:
        raise UsageError("--image runs the in-cluster probe", hint="add --in-cluster")
    if in_cluster and probe_image:
        probe = pod_network_probe(ProbeOptions(image=probe_image), kubeconfig, probe_timeout, keep)
        emit(output, probe.to_json(), lambda: pod_network_text(probe))
        if not probe.ok:
            raise SystemExit(1)
        return
    if in_cluster:
        conn, source = in_cluster_report(opts, kubeconfig)
        data = {**conn.to_json(), "source": source}
        emit(output, data, lambda: _in_cluster_text(conn, source))
        if not conn.ok:
            raise SystemExit(1)
        return
    if not inventory:
        raise UsageError("netcheck needs -i INVENTORY", hint="or --render-manifests / --in-cluster")
    from bootstrap.validate.report import netcheck_text
    from bootstrap.workflow.check import netcheck_fleet
    from bootstrap.workflow.options import FleetOptions

    report = netcheck_fleet(
        FleetOptions(inventory, flags={"config": config}, forks=forks, tofu=trust_on_first_use)
    )
    emit(output, report.to_json(), lambda: netcheck_text(report, color=sys.stdout.isatty()))
    if report.failed:
        raise SystemExit(1)


def _render(opts: NetcheckerOptions) -> str:
    return render_manifests(opts)


# ---- --in-cluster -------------------------------------------------------------------------------
def _kubectl(args: list[str], kubeconfig: str | None) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RequirementError("kubectl is not installed", hint="--in-cluster reads the report through kubectl")
    cmd = [kubectl, *(["--kubeconfig", kubeconfig] if kubeconfig else []), f"--request-timeout={KUBECTL_TIMEOUT}s",
           *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT + 5,
                              env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise KbootstrapError(f"kubectl {' '.join(args[:2])} did not answer in {KUBECTL_TIMEOUT}s",
                              hint="is the API server up?") from None


def _kubectl_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"kubectl exited {proc.returncode}"


def in_cluster_report(opts: NetcheckerOptions, kubeconfig: str | None) -> tuple[ConnectivityReport, str]:
    """The server's /api/v1/connectivity_check through the API server's service proxy.

    kubectl keeps the body of a non-2xx answer only in its error text, so on HTTP 400 we read the
    agent cache (/api/v1/agents/, always 200) and the agent pods, and apply the server's own rule:
    absent = never reported, outdated = last report older than its interval."""
    proc = _kubectl(["get", "--raw", proxy_path(opts)], kubeconfig)
    if proc.returncode == 0:
        try:
            return parse_connectivity(json.loads(proc.stdout), http_ok=True), "netchecker-server"
        except (json.JSONDecodeError, AttributeError):
            raise KbootstrapError(f"netchecker-server answered with something that is not JSON: "
                                  f"{proc.stdout.strip()[:120]}") from None
    err = _kubectl_error(proc)
    if not re.search(r"BadRequest|\b400\b|rejected our request", err):
        raise KbootstrapError(f"cannot read Netchecker's report: {err}",
                              hint="is the API server up, and Netchecker deployed (`netcheck --render-manifests`)?")
    body = re.search(r"\{.*\}", err)
    if body:
        try:
            return parse_connectivity(json.loads(body[0]), http_ok=False), "netchecker-server"
        except json.JSONDecodeError:
            pass
    return computed_report(opts, kubeconfig), "computed from netchecker-server's agent cache"


def computed_report(opts: NetcheckerOptions, kubeconfig: str | None) -> ConnectivityReport:
    cache_path = f"/api/v1/namespaces/{opts.namespace}/services/{SERVICE}:{SERVER_PORT}/proxy/api/v1/agents/"
    cache = _kubectl(["get", "--raw", cache_path], kubeconfig)
    if cache.returncode != 0:
        raise KbootstrapError(f"cannot read Netchecker's agent cache: {_kubectl_error(cache)}")
    pods = _kubectl(["get", "pods", "-n", opts.namespace, "-l", f"app in ({','.join(AGENT_LABELS)})",
                     "-o", "json"], kubeconfig)
    if pods.returncode != 0:
        raise KbootstrapError(f"cannot list Netchecker's agent pods: {_kubectl_error(pods)}")
    try:
        agents = json.loads(cache.stdout) or {}
        names = [p["metadata"]["name"] for p in json.loads(pods.stdout).get("items", [])]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise KbootstrapError("Netchecker's agent cache or pod list is not the JSON expected") from None
    return agents_report(names, agents, datetime.now(UTC))


def agents_report(pods: list[str], agents: dict[str, Any], now: datetime) -> ConnectivityReport:
    absent, outdated = [], []
    for name in sorted(pods):
        info = agents.get(name)
        if not isinstance(info, dict):
            absent.append(name)
            continue
        interval = float(info.get("report_interval") or info.get("ReportInterval") or 0)
        last = _go_time(str(info.get("last_updated") or info.get("LastUpdated") or ""))
        if last is None or (interval and (now - last).total_seconds() > interval):
            outdated.append(name)
    ok = not absent and not outdated
    message = (f"All {len(pods)} pods successfully reported back to the server" if ok
               else f"There are absent or outdated pods; total: {len(pods)}, absent: {len(absent)}, "
               f"outdated: {len(outdated)}")
    return ConnectivityReport(ok, message, tuple(absent), tuple(outdated))


def _go_time(text: str) -> datetime | None:
    """Go's RFC 3339 with nanoseconds (2024-05-01T10:00:00.123456789Z) -> an aware datetime."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text.strip())
    if not m:
        return None
    frac = (m[2] or ".0")[:7]
    tz = "+00:00" if m[3] == "Z" else m[3]
    try:
        return datetime.fromisoformat(f"{m[1]}{frac}{tz}")
    except ValueError:
        return None


def _kubeconfig_bytes(path: str | None) -> tuple[bytes, str]:
    """kubectl's rule: --kubeconfig, else the first file in $KUBECONFIG, else ~/.kube/config."""
    where = path or (os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config"))
    try:
        with open(where, "rb") as f:
            return f.read(), where
    except OSError as exc:
        raise UsageError(f"cannot read the kubeconfig {where}: {exc.strerror}",
                         hint="pass --kubeconfig (init leaves inventories/NAME/artifacts/admin.conf)") from None


def pod_network_probe(opts: ProbeOptions, kubeconfig: str | None, timeout: int, keep: bool) -> PodNetworkReport:
    from bootstrap.kube.api import session
    from bootstrap.validate.podnetwork import probe_pod_network

    data, where = _kubeconfig_bytes(kubeconfig)
    with session(data, where) as api:
        return probe_pod_network(api, opts, timeout=timeout, keep=keep)


def pod_network_text(report: PodNetworkReport) -> str:
    running = [a for a in report.agents if a.problem is None]
    peers = report.peers
    lines = [f"pod network (kbootstrap probe, image {report.image}): "
             f"{'ok' if report.ok else 'FAILED'} in {report.seconds:.0f}s",
             f"  agents running: {len(running)} of {len(report.agents) + len(report.nodes_without_agent)} nodes",
             f"  cluster DNS and Service: {sum(1 for a in running if a.report and a.report.dns_ok)} and "
             f"{sum(1 for a in running if a.report and a.report.service_ok)} of {len(running)} agents",
             f"  pod to pod: {sum(p.ok for p in peers)} of {len(peers)} pairs"]
    lines += ["  ✗ " + f for f in report.failures()]
    if report.kept:
        lines.append(f"  kept: namespace {report.namespace} (delete it with kubectl delete ns {report.namespace})")
    return "\n".join(lines)


def _in_cluster_text(report: ConnectivityReport, source: str) -> str:
    lines = [f"netchecker ({source}): {report.message or ('ok' if report.ok else 'failed')}"]
    if report.absent:
        lines.append("absent (never reported): " + ", ".join(report.absent))
    if report.outdated:
        lines.append("outdated (stopped reporting): " + ", ".join(report.outdated))
    return "\n".join(lines)
