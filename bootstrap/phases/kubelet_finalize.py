"""kubelet-finalize: kubelet.conf pointed at the kubelet's rotated client certificate, as kubeadm's
`kubelet-finalize enable-client-cert-rotation` does once the kubelet has written
/var/lib/kubelet/pki/kubelet-client-current.pem; the kubelet is restarted to pick it up. A rerun finds
the file as it left it (the kubeconfig phase keeps a finalized kubelet.conf) and changes nothing."""

from __future__ import annotations

import shlex

from bootstrap.engine.context import RunContext
from bootstrap.render.kubeconfig import KUBECONFIG_MODE, KUBELET_CLIENT_CURRENT, finalize_kubelet_conf
from bootstrap.spec.model import KUBERNETES_DIR

KUBELET_CONF = f"{KUBERNETES_DIR}/kubelet.conf"


def run(ctx: RunContext) -> None:
    rotated = ctx.fact(f"test -f {shlex.quote(KUBELET_CLIENT_CURRENT)}")
    if rotated is None:
        ctx.skip(KUBELET_CONF, "not a live host (--rootfs): the kubelet has no rotated certificate here")
        return
    data = ctx.read(KUBELET_CONF)
    if data is None or not rotated.ok:
        ctx.skip(KUBELET_CONF, f"no {KUBELET_CLIENT_CURRENT} yet: client certificate rotation is off")
        return
    changed = ctx.ensure_file(KUBELET_CONF, finalize_kubelet_conf(data, f"{ctx.name}:{KUBELET_CONF}"),
                              KUBECONFIG_MODE, detail="points at the rotated client certificate")
    if changed:
        ctx.service("kubelet", restart=True, why="kubelet.conf changed")
