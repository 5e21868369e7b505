"""Node preparation files: kernel modules, sysctls, containerd and crictl configuration (kubeadm.md §9)."""

from __future__ import annotations

import shlex

from bootstrap.render import containerd_registry
from bootstrap.render.templates import render_template
from bootstrap.spec.model import ClusterSpec

MODULES_FILE = "/etc/modules-load.d/kubernetes.conf"
SYSCTL_FILE = "/etc/sysctl.d/99-kubernetes.conf"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CRICTL_CONFIG = "/etc/crictl.yaml"
CONTAINERD_SOCKET = "unix:///run/containerd/containerd.sock"
REGISTRY_CONFIG_PATH = containerd_registry.CONFIG_PATH

# The binaries phase's checksum stamps: one file per installed binary, `SHA256 IDENTITY`. Hashing
# 230 MB of binaries costs more than the rest of a rerun, so both the install check and validation
# take the stamp's sha256 while the file's identity is unchanged, and hash it again otherwise.
CHECKSUM_STAMPS = "/var/lib/kbootstrap/checksums"
# Size, mtime, inode and ctime: any write, replace or chmod changes one, and ctime cannot be set by hand.
FILE_IDENTITY = 'stat -c "%s %Y %i %Z"'


def checksum_stamp(path: str) -> str:
    return f"{CHECKSUM_STAMPS}/{path.strip('/').replace('/', '_')}"


def stamped_sha256_script(path: str) -> str:
    """Prints `stamped SHA256`, `hashed SHA256` or `missing -` for the file at path."""
    p, s = shlex.quote(path), shlex.quote(checksum_stamp(path))
    return (f"if id=$({FILE_IDENTITY} {p} 2>/dev/null); then st=$(cat {s} 2>/dev/null); "
            f'if [ -n "$st" ] && [ "${{st#* }}" = "$id" ]; then echo "stamped ${{st%% *}}"; '
            f'else echo "hashed $(sha256sum {p} | cut -d" " -f1)"; fi; else echo "missing -"; fi')


MODULES = ("overlay", "br_netfilter")
# (key, value, required). Optional keys exist only once br_netfilter is loaded, which a container
# node cannot do itself: the '-' prefix tells sysctl --system not to fail on a missing key.
SYSCTLS = (
    ("net.ipv4.ip_forward", "1", True),
    ("net.bridge.bridge-nf-call-iptables", "1", False),
    ("net.bridge.bridge-nf-call-ip6tables", "1", False),
)
IPV6_SYSCTLS = (
    ("net.ipv6.conf.all.forwarding", "1", True),
    ("net.ipv6.conf.default.forwarding", "1", True),
)


def modules_conf() -> bytes:
    return ("# Managed by kbootstrap: modules Kubernetes networking needs.\n" + "\n".join(MODULES) + "\n").encode()


def sysctl_conf(spec: ClusterSpec) -> bytes:
    lines = ["# Managed by kbootstrap: kernel settings kubeadm's preflight and CNI plugins need."]
    entries = list(SYSCTLS) + (list(IPV6_SYSCTLS) if _dual_or_v6(spec) else [])
    for key, value, required in entries:
        lines.append(f"{'' if required else '-'}{key} = {value}")
    return ("\n".join(lines) + "\n").encode()


def required_sysctls(spec: ClusterSpec) -> dict[str, str]:
    entries = list(SYSCTLS) + (list(IPV6_SYSCTLS) if _dual_or_v6(spec) else [])
    return {k: v for k, v, required in entries if required}


def _dual_or_v6(spec: ClusterSpec) -> bool:
    return any(n.version == 6 for n in spec.networking.service_networks())


def sandbox_image(spec: ClusterSpec) -> str:
    """The pause image kubeadm expects for this version (preflight warns on a mismatch)."""
    return f"{spec.image_repository}/pause:{spec.version.pause_version}"


def containerd_config(spec: ClusterSpec, containerd_major: int = 1) -> bytes:
    """config.toml for containerd 2.x (config version 3) or 1.x (version 2); registry mirrors live in
    hosts.toml files under config_path (render/containerd_registry.py), read without a restart."""
    template = "containerd/config-v3.toml.j2" if containerd_major >= 2 else "containerd/config-v2.toml.j2"
    return render_template(
        template,
        sandbox_image=sandbox_image(spec),
        config_path=REGISTRY_CONFIG_PATH,
        restrict_oom_score_adj=spec.container_runtime.restrict_oom_score_adj,
    ).encode()


def registry_files(spec: ClusterSpec) -> list[tuple[str, bytes, int]]:
    """The hosts.toml (and CA) files of the spec's registry mirrors, with their modes."""
    runtime = spec.container_runtime
    if not runtime.registries_mirrors:
        return []
    ca = runtime.registry_ca_pem.encode() or None
    files = containerd_registry.render(list(runtime.registries_mirrors), ca_pem=ca)
    return [(path, data, containerd_registry.file_mode(path)) for path, data in sorted(files.items())]


def crictl_yaml() -> bytes:
    return (
        f"runtime-endpoint: {CONTAINERD_SOCKET}\nimage-endpoint: {CONTAINERD_SOCKET}\ntimeout: 10\ndebug: false\n"
    ).encode()
