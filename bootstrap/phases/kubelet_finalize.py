"""kubelet-finalize: kubelet.conf pointed at the kubelet's rotated client certificate, as kubeadm's
`kubelet-finalize enable-client-cert-rotation` does once the kubelet has written
/var/lib/kubelet/pki/kubelet-client-current.pem (it does so at its first start, from the certificate
in kubelet.conf); the kubelet is restarted to pick it up. A rerun finds the file as it left it (the
kubeconfig phase keeps a finalized kubelet.conf) and changes nothing."""

from __future__ import annotations

import shlex

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import CONTROL_PLANES, Phase
from bootstrap.render.kubeconfig import KUBECONFIG_MODE, KUBELET_CLIENT_CURRENT, finalize_kubelet_conf
from bootstrap.spec.model import KUBERNETES_DIR

KUBELET_CONF = f"{KUBERNETES_DIR}/kubelet.conf"
CERT_WAIT = 60  # seconds for a just-started kubelet to store its client certificate


def run(ctx: RunContext) -> None:
    data = ctx.read(KUBELET_CONF)
    if data is None:
        ctx.skip(KUBELET_CONF, "no kubelet.conf on this node")
        return
    path = shlex.quote(KUBELET_CLIENT_CURRENT)
    wait = 0 if ctx.dry_run else CERT_WAIT  # a dry run starts no kubelet: nothing to wait for
    rotated = ctx.fact(f"i=0; while [ $i -le {wait} ]; do test -f {path} && exit 0; [ $i -lt {wait} ] && sleep 1; "
                       "i=$((i+1)); done; exit 1", timeout=CERT_WAIT + 30, now=True)
    if rotated is None:
        ctx.skip(KUBELET_CONF, "not a live host (--rootfs): the kubelet has no rotated certificate here")
        return
    if not rotated.ok:
        ctx.skip(KUBELET_CONF, f"no {KUBELET_CLIENT_CURRENT} after {wait}s: the kubelet has not stored its "
                               "client certificate (not started, or rotation is off)")
        return
    changed = ctx.ensure_file(KUBELET_CONF, finalize_kubelet_conf(data, f"{ctx.name}:{KUBELET_CONF}"),
                              KUBECONFIG_MODE, detail="points at the rotated client certificate")
    if changed:
        ctx.service("kubelet", restart=True, why="kubelet.conf changed")


PHASE = Phase(
    "kubelet-finalize",
    "Updates settings relevant to the kubelet after TLS bootstrap",
    run,
    children=(Phase("enable-client-cert-rotation", "Enable kubelet client certificate rotation", run),),
    hosts=CONTROL_PLANES,
    needs_api_server=True,
)
