"""kubeadm's preflight checks that apply, run as one batched script per node (one round trip).

Each check prints `NAME<TAB>ok|error|warning<TAB>message`. Checks about the live host (ports,
swap, sysctls, CPUs, memory) make no sense for a --rootfs render: they are listed as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap.spec.model import ClusterSpec

# kubeadm check names (usable in --ignore-preflight-errors), in kubeadm's order.
CONTROL_PLANE_PORTS = (10259, 10257)
ETCD_PORTS = (2379, 2380)
KUBELET_PORT = 10250
REQUIRED_BINARIES = ("ip", "iptables", "mount", "nsenter")
OPTIONAL_BINARIES = ("ebtables", "ethtool", "socat", "tc", "touch")


@dataclass(frozen=True)
class CheckResult:
    name: str
    severity: str  # ok | error | warning | skipped
    message: str


def check_names(spec: ClusterSpec, *, control_plane: bool = True) -> list[str]:
    names = ["IsPrivilegedUser"]
    if control_plane:
        names += ["NumCPU", "Mem", f"Port-{spec.bind_port}"]
        names += [f"Port-{p}" for p in CONTROL_PLANE_PORTS]
        if spec.etcd_local is not None:
            names += [f"Port-{p}" for p in ETCD_PORTS]
    names += ["Swap", "CRI"]
    names += [f"FileExisting-{b}" for b in REQUIRED_BINARIES + OPTIONAL_BINARIES]
    names += ["Hostname", f"Port-{KUBELET_PORT}", "FileContent--proc-sys-net-ipv4-ip_forward", "SystemVerification"]
    return names


CGROUP_V1_MESSAGE = (
    "cgroups v1: the kubelet from v1.35 refuses to start on them unless its configuration sets failCgroupV1: "
    "false (inventory: kubelet_fail_cgroup_v1: false, or a KubeletConfiguration with failCgroupV1: false); "
    "better, boot the node with cgroups v2 (KEP-5573)"
)


CGROUP_V1_ALLOWED_MESSAGE = (
    "cgroups v1 are deprecated: the kubelet runs on them because its configuration sets failCgroupV1: false; "
    "boot the node with cgroups v2 (KEP-5573)"
)


def cgroup_v1_allowed(spec: ClusterSpec) -> bool:
    return spec.kubelet_configuration.get("failCgroupV1") is False or not spec.version.at_least(35)


def preflight_script(spec: ClusterSpec, *, control_plane: bool = True, own_ports_ok: bool = True) -> str:
    """A bash script printing one line per check. own_ports_ok: a port held by the component we
    are about to (re)configure is fine on a rerun — kbootstrap converges, kubeadm refuses."""
    ports = [spec.bind_port, *CONTROL_PLANE_PORTS] if control_plane else []
    if control_plane and spec.etcd_local is not None:
        ports += list(ETCD_PORTS)
    ports.append(KUBELET_PORT)
    port_list = " ".join(str(p) for p in ports)
    cri_sock = spec.node.cri_socket.removeprefix("unix://")
    lines = [
        "set -u",
        'say() { printf "%s\\t%s\\t%s\\n" "$1" "$2" "$3"; }',
        'if [ "$(id -u)" = 0 ]; then say IsPrivilegedUser ok "running as root"; '
        'else say IsPrivilegedUser error "user is not running as root"; fi',
    ]
    if control_plane:
        lines += [
            "n=$(nproc 2>/dev/null || echo 0)",
            'if [ "$n" -ge 2 ]; then say NumCPU ok "$n CPUs"; '
            'else say NumCPU error "the number of available CPUs $n is less than the required 2"; fi',
            "m=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)",
            'if [ "$m" -ge 1700 ]; then say Mem ok "${m} MB"; '
            'else say Mem error "the system RAM (${m} MB) is less than the minimum 1700 MB"; fi',
        ]
    # A port is "in use" if something listens on it; read /proc/net/tcp{,6} (no ss/netstat needed).
    lines += [
        'listening=$(awk \'NR>1 && $4=="0A" {split($2,a,":"); print strtonum("0x" a[2])}\' '
        "/proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)",
        f"for p in {port_list}; do",
        '  if printf "%s\\n" $listening | grep -qx "$p"; then',
        f'    say "Port-$p" {"warning" if own_ports_ok else "error"} "Port $p is in use";',
        '  else say "Port-$p" ok "free"; fi',
        "done",
        'if [ -s /proc/swaps ] && [ "$(wc -l < /proc/swaps)" -gt 1 ]; then '
        'say Swap warning "swap is on; the kubelet needs failSwapOn: false or swap off"; '
        'else say Swap ok "no swap"; fi',
        f'if [ -S {cri_sock} ]; then say CRI ok "{cri_sock}"; '
        f'else say CRI error "container runtime is not running: {cri_sock} is not a socket"; fi',
    ]
    for b in REQUIRED_BINARIES:
        lines.append(
            f"if command -v {b} >/dev/null 2>&1; then say FileExisting-{b} ok found; "
            f'else say FileExisting-{b} error "{b} not found in system path"; fi'
        )
    for b in OPTIONAL_BINARIES:
        lines.append(
            f"if command -v {b} >/dev/null 2>&1; then say FileExisting-{b} ok found; "
            f'else say FileExisting-{b} warning "{b} not found in system path"; fi'
        )
    name = spec.node.name
    lines += [
        f'if getent hosts {name} >/dev/null 2>&1; then say Hostname ok "{name} resolves"; '
        f'else say Hostname warning "hostname \\"{name}\\" could not be reached (no DNS or /etc/hosts entry)"; fi',
        "f=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo missing)",
        'if [ "$f" = 1 ]; then say FileContent--proc-sys-net-ipv4-ip_forward ok 1; '
        "else say FileContent--proc-sys-net-ipv4-ip_forward error "
        '"/proc/sys/net/ipv4/ip_forward contents are not set to 1"; fi',
        # kubeadm's SystemVerification (the cgroups part): v2 is fine; v1 errors for a kubelet that refuses it.
        't=$(stat -fc %T /sys/fs/cgroup/ 2>/dev/null || echo unknown)',
        'if [ "$t" = cgroup2fs ]; then say SystemVerification ok "cgroups v2"; '
        f'else say SystemVerification {"warning" if cgroup_v1_allowed(spec) else "error"} '
        f'"{CGROUP_V1_ALLOWED_MESSAGE if cgroup_v1_allowed(spec) else CGROUP_V1_MESSAGE} (/sys/fs/cgroup is $t)"; fi',
    ]
    return "\n".join(lines) + "\n"


def parse_results(stdout: str) -> list[CheckResult]:
    out = []
    for line in stdout.splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3:
            out.append(CheckResult(*parts))
    return out


def ignored(name: str, ignore: tuple[str, ...] | list[str]) -> bool:
    wanted = {i.lower() for i in ignore}
    return "all" in wanted or name.lower() in wanted
