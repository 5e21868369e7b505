"""Node preparation phases for fleet runs: kernel, container runtime, binaries.

Each phase reads what it needs from the node in one script, decides, and applies in one script:
a phase costs a few round trips, not one per task. Remote scripts print `CHANGED <what>` for each
thing they really changed, so a rerun with nothing to do reports nothing changed.
"""

from __future__ import annotations

import shlex

from bootstrap.artifacts import upstream
from bootstrap.artifacts.bundle import ETCD_PACKAGES, Bundle, packages_to_install
from bootstrap.artifacts.upstream import ARCHES
from bootstrap.errors import PhaseError
from bootstrap.phases.base import Phase
from bootstrap.render.node import (
    CONTAINERD_CONFIG,
    CRICTL_CONFIG,
    MODULES_FILE,
    SYSCTL_FILE,
    containerd_config,
    crictl_yaml,
    modules_conf,
    required_sysctls,
    sysctl_conf,
)
from bootstrap.transport.base import CommandResult
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import Status

DEB_CACHE = "/var/cache/kbootstrap/debs"
RUNTIME_PACKAGES = ("containerd", "runc", "conntrack", "socat", "ethtool", "ebtables", "iptables")
CNI_PACKAGE = "containernetworking-plugins"
BIN_DIR = "/usr/bin"
STAMP_DIR = "/var/lib/kbootstrap/checksums"  # where the kubelet unit shipped with the deb packages expects kubelet


def run_script(ctx: RunContext, script: str, what: str) -> CommandResult:
    """Run a script on the node, record each `CHANGED x` line, fail the phase on a non-zero exit."""
    result = ctx.target.run("set -euo pipefail\n" + script)
    for line in result.stdout.splitlines():
        if line.startswith("CHANGED "):
            ctx.record(line.removeprefix("CHANGED "), Status.UPDATED)
    if not result.ok:
        tail = (result.stderr.strip().splitlines() or result.stdout.strip().splitlines() or ["no output"])[-1]
        raise PhaseError(f"{what} failed on {ctx.target.name} (exit {result.exit_code}): {tail}")
    return result


def _live_or_skip(ctx: RunContext, what: str) -> bool:
    if ctx.dry_run:
        ctx.skip(what, "dry run")
        return False
    if not ctx.target.live:
        ctx.skip(what, "not a live host (--rootfs)")
        return False
    return True


# ---- kernel ------------------------------------------------------------------------------------
def run_kernel(ctx: RunContext) -> None:
    written = ctx.ensure_files([(MODULES_FILE, modules_conf(), 0o644), (SYSCTL_FILE, sysctl_conf(ctx.spec), 0o644)])
    changed = any(written.values())
    if not _live_or_skip(ctx, "apply sysctls, load modules, swap off"):
        return
    checks = "\n".join(
        f'[ "$(sysctl -n {k} 2>/dev/null)" = {v} ] || {{ sysctl -q -w {k}={v}; echo "CHANGED sysctl {k}={v}"; }}'
        for k, v in required_sysctls(ctx.spec).items()
    )
    script = f"""
# Modules come from the host kernel; a container node may not load them itself.
if command -v modprobe >/dev/null; then for m in overlay br_netfilter; do modprobe "$m" 2>/dev/null || true; done; fi
{"sysctl --system >/dev/null 2>&1 || true" if changed else ":"}
{checks}
if [ "$(wc -l < /proc/swaps)" -gt 1 ]; then
  swapoff -a && echo "CHANGED swapoff"
  if grep -qE '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab 2>/dev/null; then
    sed -i.kbootstrap -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \\1/' /etc/fstab && echo "CHANGED /etc/fstab swap"
  fi
fi
"""
    run_script(ctx, script, "kernel settings")


# ---- packages from the bundle (or apt when there is none) --------------------------------------
def install_packages(ctx: RunContext, wanted: tuple[str, ...], what: str) -> None:
    facts = ctx.target.run("dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' 2>/dev/null || true")
    installed = {ln.split()[0] for ln in facts.stdout.splitlines() if len(ln.split()) > 1 and ln.split()[1] == "ii"}
    missing = [p for p in wanted if p not in installed]
    if not missing:
        return
    if ctx.dry_run:
        ctx.record(f"install {' '.join(missing)}", Status.CREATED, "dry run")
        return
    # Debian starts daemons on install with their default config (etcd then fails, containerd runs
    # unconfigured): a policy-rc.d that says "no" keeps them down until we have configured them.
    norestart = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d"
    cleanup = "rm -f /usr/sbin/policy-rc.d"
    if ctx.bundle is None:
        pkgs = " ".join(shlex.quote(p) for p in missing)
        run_script(
            ctx,
            f"{norestart}\ntrap '{cleanup}' EXIT\n"
            f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {pkgs} >/dev/null\n"
            f"echo 'CHANGED installed {' '.join(missing)} (apt)'",
            what,
        )
        return
    debs = packages_to_install(ctx.bundle, tuple(missing), installed)
    _push_debs(ctx, ctx.bundle, [d.path for d in debs])
    paths = " ".join(shlex.quote(f"{DEB_CACHE}/{d.path.removeprefix('debs/')}") for d in debs)
    sums = "\n".join(f"{d.sha256}  {DEB_CACHE}/{d.path.removeprefix('debs/')}" for d in debs)
    run_script(
        ctx,
        f"""{norestart}
trap '{cleanup}' EXIT
sha256sum --quiet -c - <<'SUMS'
{sums}
SUMS
if ! DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold {paths} >/tmp/kbootstrap-dpkg.log 2>&1; then
  tail -3 /tmp/kbootstrap-dpkg.log >&2; exit 1
fi
echo "CHANGED installed {" ".join(d.package for d in debs)}"
""",
        what,
    )


def _push_debs(ctx: RunContext, bundle: Bundle, rels: list[str]) -> None:
    ctx.target.mkdir(DEB_CACHE, 0o755)
    check = "\n".join(f"{bundle.sha256(r)}  {DEB_CACHE}/{r.removeprefix('debs/')}" for r in rels)
    have = ctx.target.run(f"sha256sum -c - 2>/dev/null <<'SUMS' | sed -n 's/: OK$//p'\n{check}\nSUMS\n")
    present = set(have.stdout.split())
    for rel in rels:
        remote = f"{DEB_CACHE}/{rel.removeprefix('debs/')}"
        if remote not in present:
            ctx.target.write(remote, (bundle.root / rel).read_bytes(), 0o644)


# ---- container runtime -------------------------------------------------------------------------
def run_container_runtime(ctx: RunContext) -> None:
    if ctx.target.live:
        install_packages(ctx, RUNTIME_PACKAGES, "installing the container runtime")
    major = 1
    if ctx.target.live and not ctx.dry_run:
        v = ctx.target.run("containerd --version 2>/dev/null | grep -oE ' v?[0-9]+\\.' | head -1 | tr -dc 0-9")
        major = int(v.stdout.strip() or 1)
    written = ctx.ensure_files(
        [(CONTAINERD_CONFIG, containerd_config(ctx.spec, major), 0o644), (CRICTL_CONFIG, crictl_yaml(), 0o644)]
    )
    changed = written[CONTAINERD_CONFIG]
    if not _live_or_skip(ctx, "start containerd"):
        return
    restart = "systemctl restart containerd && echo 'CHANGED restarted containerd'" if changed else ":"
    run_script(
        ctx,
        f"""
if ! systemctl is-enabled -q containerd 2>/dev/null; then
  systemctl enable -q containerd; echo 'CHANGED enabled containerd'
fi
if systemctl is-active -q containerd; then {restart}
else systemctl start containerd && echo 'CHANGED started containerd'; fi
# The CRI socket must answer with the cri plugin loaded (what the kubelet talks to).
for i in $(seq 1 50); do
  if ctr --address /run/containerd/containerd.sock plugins ls 2>/dev/null \\
     | grep -qE 'io.containerd.grpc.v1[[:space:]]+cri[[:space:]].*ok'; then exit 0; fi
  sleep 0.2
done
echo "containerd's CRI plugin is not answering on /run/containerd/containerd.sock" >&2; exit 1
""",
        "configuring containerd",
    )


# ---- binaries ----------------------------------------------------------------------------------
def _binary_phase(name: str) -> Phase:
    def run(ctx: RunContext) -> None:
        if ctx.bundle is None:
            # No bundle: the upstream release, downloaded once on the control machine, pinned sha256.
            arch = ctx.target.run("uname -m").stdout.strip()
            if arch not in ARCHES:
                raise PhaseError(f"{name}: no upstream build for machine type {arch!r} on {ctx.target.name}")
            src, want = upstream.fetch(name, ctx.spec.kubernetes_version, ARCHES[arch], base_url=ctx.artifact_base_url)
        else:
            bundled = ctx.bundle.binary(name)
            if bundled is None:
                raise PhaseError(
                    f"{name}: artifact missing (the bundle at {ctx.bundle.root} has no bin/{name})",
                    hint="add it with `kbootstrap bundle create --binaries-from DIR`, "
                    f"or skip with --skip-phases binaries/{name}",
                )
            src, want = bundled, ctx.bundle.sha256(f"bin/{name}")
        path = f"{BIN_DIR}/{name}"
        stamp = f"{STAMP_DIR}/{name}"
        # Hashing a 60 MB binary on every run costs more than the rest of a rerun: a stamp records
        # the checksum with the file's size, mtime and inode, and the hash is recomputed whenever
        # any of them changed.
        have = ctx.target.run(f"""
id=$(stat -c '%s %Y %i' {path} 2>/dev/null) || exit 0
if [ "$(cat {stamp} 2>/dev/null)" = "{want} $id" ]; then echo {want}; else sha256sum {path} | cut -d' ' -f1; fi
""").stdout.strip()
        if have == want:
            ctx.record(path, Status.UNCHANGED)
            _write_stamp(ctx, path, stamp, want)
            return
        if not ctx.dry_run:
            ctx.target.write(path, src.read_bytes(), 0o755)
            got = ctx.target.run(f"sha256sum {path} | cut -d' ' -f1").stdout.strip()
            if got != want:
                raise PhaseError(f"{name}: checksum mismatch after copy to {ctx.target.name}:{path}")
            _write_stamp(ctx, path, stamp, want)
        ctx.record(path, Status.CREATED if not have else Status.UPDATED, f"sha256 {want[:12]}")

    return Phase(name, f"Install {name} (checksum verified)", run)


def _write_stamp(ctx: RunContext, path: str, stamp: str, sha256: str) -> None:
    if ctx.dry_run:
        return
    ctx.target.run(
        f"mkdir -p {STAMP_DIR}; s=\"{sha256} $(stat -c '%s %Y %i' {path})\"; "
        f'[ "$(cat {stamp} 2>/dev/null)" = "$s" ] || printf "%s" "$s" > {stamp}'
    )


def run_cni(ctx: RunContext) -> None:
    install_packages(ctx, (CNI_PACKAGE,), "installing CNI plugins")
    if not _live_or_skip(ctx, "link CNI plugins"):
        return
    # Debian installs plugins in /usr/lib/cni; the kubelet and containerd look in /opt/cni/bin.
    run_script(
        ctx,
        """
mkdir -p /opt/cni/bin
for f in /usr/lib/cni/*; do
  t=/opt/cni/bin/$(basename "$f")
  [ "$(readlink "$t" 2>/dev/null)" = "$f" ] || { ln -sfn "$f" "$t"; echo "CHANGED $t"; }
done
""",
        "linking CNI plugins",
    )


def run_etcd_packages(ctx: RunContext) -> None:
    """etcd members in host mode need the etcd binaries (Debian's etcd-server / etcd-client)."""
    if "etcd" not in ctx.roles or str(ctx.spec.etcd_mode) != "host" or ctx.spec.etcd_external:
        ctx.skip("etcd packages", "not an etcd member in host mode")
        return
    # policy-rc.d keeps Debian's default etcd from starting; the etcd phase then writes our unit
    # as /etc/systemd/system/etcd.service, which takes the place of the package's.
    install_packages(ctx, ETCD_PACKAGES, "installing etcd")


KERNEL = Phase("kernel", "Load kernel modules, set sysctls (ip_forward), turn swap off", run_kernel)
CONTAINER_RUNTIME = Phase(
    "container-runtime",
    "Install and configure containerd (SystemdCgroup, sandbox image) and crictl",
    run_container_runtime,
)
BINARIES = Phase(
    "binaries",
    "Install kubectl, kubelet, kubeadm and CNI plugins from the bundle, verifying checksums",
    None,
    children=(
        _binary_phase("kubectl"),
        _binary_phase("kubelet"),
        _binary_phase("kubeadm"),
        Phase("cni", "Install the CNI plugins", run_cni),
        Phase("etcd", "Install etcd on etcd members (host mode)", run_etcd_packages),
    ),
)
