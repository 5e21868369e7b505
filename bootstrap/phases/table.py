"""The init phase table, in kubeadm's order (kubeadm.md section 10). It drives `kbootstrap init`,
`--skip-phases`, `kbootstrap init phase <name>` and their help text.

Phases after kubelet-start talk to a running kube-apiserver. kbootstrap does not implement them
yet (no kube-apiserver can run where we test); they stay in the table, marked, so a run says
plainly where it stopped instead of pretending.
"""

from __future__ import annotations

from functools import cache

from bootstrap.errors import UsageError
from bootstrap.phases import certs, control_plane, etcd, kubeconfig, kubelet, preflight
from bootstrap.phases.base import Phase

_API_PHASES = (
    ("wait-control-plane", "Wait for the control plane to start"),
    ("upload-config", "Upload the kubeadm and kubelet configuration to a ConfigMap"),
    ("upload-certs", "Upload certificates to kubeadm-certs"),
    ("mark-control-plane", "Mark a node as a control-plane"),
    ("bootstrap-token", "Generate bootstrap tokens used to join a node to a cluster"),
    ("kubelet-finalize", "Update settings relevant to the kubelet after TLS bootstrap"),
    ("addon", "Install required addons for passing conformance tests"),
    ("show-join-command", "Show the join command for control-plane and worker node"),
)


@cache
def init_phases() -> tuple[Phase, ...]:
    return (
        preflight.PHASE,
        certs.PHASE,
        kubeconfig.PHASE,
        etcd.PHASE,
        control_plane.PHASE,
        kubelet.PHASE,
        *(Phase(name, help_text, None, needs_api_server=True) for name, help_text in _API_PHASES),
    )


def phase_paths(phases: tuple[Phase, ...]) -> list[str]:
    return [path for top in phases for path, _ in top.walk()]


def find(phases: tuple[Phase, ...], path: str) -> Phase:
    for top in phases:
        for p, phase in top.walk():
            if p == path:
                return phase
    raise UsageError(f"unknown phase {path!r}", hint="valid phases: " + ", ".join(phase_paths(phases)))


def check_skip_list(phases: tuple[Phase, ...], skip: tuple[str, ...] | list[str]) -> set[str]:
    """Validate --skip-phases names (kubeadm accepts 'certs' or 'certs/apiserver')."""
    known = set(phase_paths(phases))
    out = set()
    for name in skip:
        name = name.strip().removesuffix("/all")
        if name not in known:
            raise UsageError(f"--skip-phases: unknown phase {name!r}", hint="valid phases: " + ", ".join(sorted(known)))
        out.add(name)
    return out
