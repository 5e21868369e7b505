"""kbootstrap's pod-network probe: the closest honest stand-in for Netchecker, as data.

Netchecker's server and agents cannot be built here (the Go module proxy refuses
github.com/Mirantis/k8s-netchecker-server and -agent with 403), and running somebody's prebuilt
image would not be ours to vouch for. So `netcheck --in-cluster --image IMAGE` deploys this instead:
one DaemonSet on every node (taints tolerated, as Netchecker's agents), running any image with a
static busybox at /bin/busybox. Each agent serves its pod name over HTTP on :8080 and, every
`interval` seconds, checks what Netchecker's agents prove by reporting in:

- cluster DNS: it resolves the headless Service `peers` (every agent's IP, not-ready ones too);
- Services (kube-proxy / the CNI's service path): it fetches `/name` through the ClusterIP Service;
- pod to pod across nodes: it fetches `/name` from every peer IP it resolved.

It writes the results to /www/report (one line each, replaced atomically), which the control machine
reads through the API server's pod proxy, as Netchecker's report is read through its service proxy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

PORT = 8080
APP = "kbootstrap-netcheck"
PEERS = "peers"  # the headless Service: one A record per agent
SERVICE = "service"  # the ClusterIP Service in front of every agent
REPORT_PATH = "/report"
BUSYBOX = "/bin/busybox"

# POSIX sh + busybox applets only; every applet is called through $B, so no PATH is assumed.
AGENT_SCRIPT = r"""
B=/bin/busybox
$B mkdir -p /www
$B hostname > /www/name
$B httpd -p {port} -h /www
dom=$($B awk '/^search/ {{print $2; exit}}' /etc/resolv.conf)
# The addresses after the answer's Name: line (busybox prints "Address: IP" or "Address 1: IP name").
first_ip='/^Name:/ {{n=1; next}}
  n && /^Address/ {{for (i=2; i<=NF; i++)
    if ($i ~ /^[0-9]+[.][0-9.]+$/ || $i ~ /^[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:]*$/) {{print $i; break}}}}'
url() {{ case $1 in *:*) echo "http://[$1]:{port}/name" ;; *) echo "http://$1:{port}/name" ;; esac; }}
while :; do
  {{
    if out=$($B nslookup {peers}.$dom 2>&1); then
      echo "dns ok {peers}.$dom"
      ips=$(echo "$out" | $B awk "$first_ip")
    else
      echo "dns fail {peers}.$dom"; ips=""
    fi
    if got=$($B timeout 3 $B wget -qO- "http://{service}.$dom:{port}/name" 2>/dev/null); then
      echo "service ok $got"
    else
      echo "service fail {service}.$dom"
    fi
    for ip in $ips; do
      if got=$($B timeout 3 $B wget -qO- "$(url "$ip")" 2>/dev/null); then
        echo "peer $ip ok $got"
      else
        echo "peer $ip fail"
      fi
    done
  }} > /www/report.new
  $B mv -f /www/report.new /www/report
  $B sleep {interval}
done
"""


@dataclass(frozen=True)
class ProbeOptions:
    image: str
    namespace: str = APP
    interval: int = 2  # seconds between an agent's rounds


def _meta(name: str, opts: ProbeOptions) -> dict[str, Any]:
    return {"name": name, "namespace": opts.namespace, "labels": {"app.kubernetes.io/name": APP}}


def render_objects(opts: ProbeOptions) -> list[dict[str, Any]]:
    """Namespace, the two Services and the DaemonSet, in apply order."""
    selector = {"app": APP}
    port = {"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}
    script = AGENT_SCRIPT.format(port=PORT, peers=PEERS, service=SERVICE, interval=opts.interval)
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": opts.namespace, "labels": {"app.kubernetes.io/name": APP}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(PEERS, opts),
         # Not-ready agents are listed too: a pod whose readiness lags must still be probed.
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": selector, "ports": [port]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(SERVICE, opts),
         "spec": {"selector": selector, "ports": [port]}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(APP, opts),
         "spec": {
             "selector": {"matchLabels": selector},
             "template": {
                 "metadata": {"labels": selector},
                 "spec": {
                     "tolerations": [{"operator": "Exists"}],  # every node, control planes included
                     "terminationGracePeriodSeconds": 1,  # sh as PID 1 ignores SIGTERM
                     "automountServiceAccountToken": False,  # the agent never talks to the API
                     "containers": [{
                         "name": "agent",
                         "image": opts.image,
                         "command": [BUSYBOX, "sh", "-c", script],
                         "ports": [{"containerPort": PORT, "name": "http"}],
                         "readinessProbe": {"httpGet": {"path": "/name", "port": PORT}, "periodSeconds": 2},
                         "securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 65534,
                                             "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                                             "seccompProfile": {"type": "RuntimeDefault"}},
                         "volumeMounts": [{"name": "www", "mountPath": "/www"}],
                     }],
                     "volumes": [{"name": "www", "emptyDir": {}}],
                 },
             },
         }},
    ]


@dataclass(frozen=True)
class AgentReport:
    """One agent's last round, parsed from its /www/report."""

    dns_ok: bool
    dns_name: str
    service_ok: bool
    service_answer: str
    peers: dict[str, str | None] = field(default_factory=dict)  # peer IP -> the pod that answered, None: no answer


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def parse_report(text: str) -> AgentReport | None:
    """None for a report that is not one (an empty file, an HTTP error page)."""
    dns: tuple[bool, str] | None = None
    service: tuple[bool, str] | None = None
    peers: dict[str, str | None] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        kind, status, rest = words[0], words[1], words[2:]
        if kind == "dns":
            dns = (status == "ok", rest[0] if rest else "")
        elif kind == "service":
            service = (status == "ok", rest[0] if rest else "")
        elif kind == "peer" and len(words) >= 3:
            ip = _ip(words[1])
            if ip is not None:
                peers[ip] = words[3] if words[2] == "ok" and len(words) > 3 else None
    if dns is None or service is None:
        return None
    return AgentReport(dns[0], dns[1], service[0], service[1], peers)
