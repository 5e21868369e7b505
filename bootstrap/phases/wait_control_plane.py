"""wait-control-plane: the kubelet and the control-plane static pods it started answer their health
endpoints on the node, as kubeadm waits for them (kube-apiserver /livez, kube-controller-manager
/healthz, kube-scheduler /livez, the kubelet's /healthz), up to kubeadm's 4 minutes.

Checked on the node itself (the controller-manager and scheduler listen on 127.0.0.1 only), in one
script that loops there: one round trip, and the script's timeout is longer than its own deadline,
so a component that never comes up is named in the phase's own message.
"""

from __future__ import annotations

import shlex

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import CONTROL_PLANES, Phase
from bootstrap.engine.result import Status
from bootstrap.errors import PhaseError
from bootstrap.render import podspec

HEALTH_TIMEOUT = 240  # kubeadm: timeouts.controlPlaneComponentHealthCheck, 4m0s
KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"


def endpoints(ctx: RunContext) -> dict[str, str]:
    port = ctx.spec.bind_port
    return {
        "kubelet": KUBELET_HEALTHZ,
        "kube-apiserver": f"https://127.0.0.1:{port}/livez",
        "kube-controller-manager": f"https://127.0.0.1:{podspec.KCM_PORT}/healthz",
        "kube-scheduler": f"https://127.0.0.1:{podspec.SCHEDULER_PORT}/livez",
    }


def run(ctx: RunContext) -> None:
    if ctx.dry_run or not ctx.live:
        ctx.skip("control plane", "dry run: nothing is waited for" if ctx.dry_run else "not a live host (--rootfs)")
        return
    checks = endpoints(ctx)
    wanted = " ".join(shlex.quote(f"{name}={url}") for name, url in checks.items())
    script = f"""
deadline=$(( $(date +%s) + {HEALTH_TIMEOUT} ))
for entry in {wanted}; do
  name=${{entry%%=*}}; url=${{entry#*=}}; start=$(date +%s)
  until [ "$(curl -sk --max-time 3 -o /dev/null -w '%{{http_code}}' "$url")" = 200 ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "$name not healthy at $url"; exit 3; fi
    sleep 1
  done
  echo "$name healthy after $(( $(date +%s) - start ))s"
done
"""
    result = ctx.fact(script, timeout=HEALTH_TIMEOUT + 60, now=True)
    assert result is not None
    for line in result.stdout.splitlines():
        name = line.split(" ", 1)[0]
        if name in checks and " healthy " in line:
            ctx.record(name, Status.UNCHANGED, line.split(" ", 1)[1])
    if not result.ok:
        last = (result.stdout.strip().splitlines() or ["no answer"])[-1]
        component = last.split(" ", 1)[0]
        raise PhaseError(
            f"the control plane on {ctx.name} did not come up within {HEALTH_TIMEOUT // 60}m: {last}"
            + container_state(ctx, component),
            hint="see `journalctl -u kubelet` and `crictl ps -a` on that node",
        )


def container_state(ctx: RunContext, component: str) -> str:
    """What the CRI says about the component's container: its state, restarts and last log line."""
    if component == "kubelet":
        found = ctx.fact("systemctl is-active kubelet; journalctl -u kubelet -n 200 --no-pager -o cat "
                         "| grep -E ' E[0-9]{4} |error|failed' | tail -1")
    else:
        name = shlex.quote(component)
        found = ctx.fact(f"id=$(crictl ps -a -q --name {name} 2>/dev/null | head -1); "
                         f"[ -n \"$id\" ] || {{ echo 'no container'; exit 0; }}; "
                         "crictl inspect -o go-template --template "
                         "'{{.status.state}} (attempt {{.status.metadata.attempt}})' \"$id\" 2>/dev/null; echo; "
                         "crictl logs --tail 20 \"$id\" 2>&1 | grep -v '^$' | tail -1")
    lines = [ln.strip() for ln in (found.stdout if found is not None else "").splitlines() if ln.strip()]
    return f" [{'; '.join(lines)[:400]}]" if lines else ""


PHASE = Phase("wait-control-plane", "Wait for the control plane to start", run, hosts=CONTROL_PLANES,
              needs_api_server=True)
