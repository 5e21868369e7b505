"""The lab as a Kubespray-style inventory: hosts.yaml, known_hosts and group_vars/all/lab.yml."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import yaml

from bootstrap.artifacts.bundle import MANIFEST, create_bundle, default_bundle_dir
from bootstrap.artifacts.components import DEFAULT_RELEASE, Components, load_components
from bootstrap.errors import RequirementError, UsageError
from bootstrap.lab import registry
from bootstrap.lab.state import LabState, write_atomic
from bootstrap.render import containerd_registry
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION


class _Dumper(yaml.SafeDumper):
    """Writes None as an empty value (`dev-cp1:`), as Kubespray's sample inventories do."""


_Dumper.add_representer(type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", ""))


def render_hosts(lab: LabState) -> dict[str, Any]:
    cps = [m.name for m in lab.machines if m.role == "control-plane"]
    workers = [m.name for m in lab.machines if m.role == "worker"]
    hosts = {
        m.name: {
            "ansible_host": m.ip,
            "ip": m.ip,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(lab.key_path),
        }
        for m in lab.machines
    }
    return {
        "all": {
            "hosts": hosts,
            "children": {
                "kube_control_plane": {"hosts": {n: None for n in cps}},
                "etcd": {"hosts": {n: None for n in cps}},
                # With no workers the control planes run workloads, as in a one-node kubeadm cluster.
                "kube_node": {"hosts": {n: None for n in (workers or cps)}},
                "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
            },
        }
    }


def render_known_hosts(lab: LabState, host_keys: dict[str, str]) -> str:
    """OpenSSH known_hosts lines: 'name,fqdn,ip keytype base64' (paramiko's load_host_keys reads it)."""
    return "".join(f"{m.name},{m.name}.{lab.domain},{m.ip} {host_keys[m.name]}\n" for m in lab.machines)


# Lab machines have no route out: they install from an offline bundle of the pinned component build
# (`make components`). Without it no kubelet or kubeadm binary can be had here: their phases, and
# every phase that needs a running kubelet or API server, are skipped, saying why.
def lab_skip_phases_without_components() -> list[str]:
    from bootstrap.phases.tree import INIT

    names = [p.name for p in INIT]
    after = names[names.index("kubelet-start"):]
    return ["binaries/kubelet", "binaries/kubeadm", *(n for n in after if n != "validate")]


LAB_SKIP_REASON = (
    "no kubelet or kubeadm binary on this machine (run `make components`), "
    "so lab clusters stop before the kubelet runs"
)


def lab_components() -> Components | None:
    """The pinned component build of the default release, when it is built here."""
    try:
        return load_components(DEFAULT_RELEASE)
    except RequirementError:
        return None


CAP_SYS_RESOURCE = 24


def host_has_capability(cap: int, status: str | None = None) -> bool:
    """Whether this process's bounding set holds the capability (what lab machines can get at most)."""
    if status is None:
        with open("/proc/self/status") as f:
            status = f.read()
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return True


def lab_bundle_dir() -> Path:
    """The offline bundle lab inventories point at (kbootstrap_bundle): the component build's when it
    is built here, else Debian's packages only."""
    components = lab_components()
    version = components.release if components is not None else DEFAULT_KUBERNETES_VERSION
    return default_bundle_dir(version, components)


def ensure_lab_bundle() -> Path:
    """lab_bundle_dir(), made if missing (tests and benchmarks; `make demo` runs `bundle create`)."""
    path = lab_bundle_dir()
    if not (path / MANIFEST).is_file():
        components = lab_components()
        create_bundle(path, components.release if components else DEFAULT_KUBERNETES_VERSION, components=components)
    return path


LAB_EVICTION_HARD = {"memory.available": "100Mi", "nodefs.available": "2Gi", "nodefs.inodesFree": "5%",
                     "imagefs.available": "2Gi", "imagefs.inodesFree": "5%"}


def lab_vars(lab: LabState) -> dict[str, Any]:
    components = lab_components()
    version = components.release if components is not None else DEFAULT_KUBERNETES_VERSION
    return {
        "lab_name": lab.name,
        "lab_domain": lab.domain,
        "lab_subnet": lab.subnet,
        "lab_gateway": lab.bridge_ip,
        "lab_known_hosts": str(lab.known_hosts_path),
        "kube_version": version,
        "kbootstrap_bundle": str(lab_bundle_dir()),
        **({} if components else {"kbootstrap_skip_phases": lab_skip_phases_without_components(),
                                  "kbootstrap_skip_reason": LAB_SKIP_REASON}),
        **({"kbootstrap_vip": lab.vip} if lab.vip else {}),
        # Nodes pull through the lab registry (https, lab CA): registry.k8s.io and every registry
        # an image in it comes from. containerd_registries_mirrors is Kubespray's variable.
        "containerd_registries_mirrors": registry.mirrors(lab),
        containerd_registry.CA_VAR: str(registry.ca_path(lab.dir)),
        # Lab machines run on this host's kernel, whose cgroups are v1: a kubelet from v1.35 refuses
        # to start there unless told (KubeletConfiguration failCgroupV1; Kubespray's variable).
        "kubelet_fail_cgroup_v1": False,
        # Lab machines share this host's disk, whose free space other work on the host moves. The
        # kubelet's default thresholds are shares of that whole disk (imagefs 15% of 252G is 38G):
        # below them every node at once evicts and refuses pods. Absolute floors judge the lab's own
        # use (Kubespray's variables).
        "eviction_hard": LAB_EVICTION_HARD,
        "eviction_hard_control_plane": LAB_EVICTION_HARD,
        # Lab machines have at most this host's capabilities. Without CAP_SYS_RESOURCE nothing in
        # them may lower an OOM score, and runc fails every pod sandbox (containerd gives it -998)
        # with "can't get final child's PID from pipe": containerd must clamp scores to its own
        # (its CRI option restrict_oom_score_adj).
        "kbootstrap_containerd_restrict_oom_score_adj": not host_has_capability(CAP_SYS_RESOURCE),
    }


def merge_vars(path: Path, ours: dict[str, Any]) -> dict[str, Any]:
    """Update our keys, keep everyone else's."""
    current: Any = {}
    with contextlib.suppress(FileNotFoundError):
        current = yaml.safe_load(path.read_text()) or {}
    if not isinstance(current, dict):
        raise UsageError(f"{path} is not a YAML mapping", hint="fix or remove it")
    current.update(ours)
    return current


def write(lab: LabState, host_keys: dict[str, str]) -> Path:
    inv = Path(lab.inventory_dir)
    known = render_known_hosts(lab, host_keys)
    write_atomic(inv / "hosts.yaml", yaml.dump(render_hosts(lab), Dumper=_Dumper, sort_keys=False))
    write_atomic(inv / "known_hosts", known)
    write_atomic(lab.known_hosts_path, known)  # the lab's own copy, for `lab ssh` from any directory
    gv = inv / "group_vars" / "all" / "lab.yml"
    write_atomic(gv, yaml.safe_dump(merge_vars(gv, lab_vars(lab)), sort_keys=False))
    return inv


def remove(lab: LabState) -> None:
    """Remove what describes machines that no longer exist; keep vars in lab.yml that others wrote."""
    inv = Path(lab.inventory_dir)
    for f in ("hosts.yaml", "known_hosts"):
        with contextlib.suppress(FileNotFoundError):
            (inv / f).unlink()
    gv = inv / "group_vars" / "all" / "lab.yml"
    with contextlib.suppress(FileNotFoundError, UsageError, yaml.YAMLError):
        rest = {k: v for k, v in merge_vars(gv, {}).items() if k not in lab_vars(lab)}
        if rest:
            write_atomic(gv, yaml.safe_dump(rest, sort_keys=False))
        else:
            gv.unlink()
    with contextlib.suppress(OSError):  # only if nothing else is left there
        for d in (inv / "group_vars" / "all", inv / "group_vars", inv):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
