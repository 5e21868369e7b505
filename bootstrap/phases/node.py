"""Node preparation phases for fleet runs: kernel, container runtime, binaries.

Each phase reads what it needs from the node (facts, which run in a dry run too), decides in Python,
and applies only what differs through the run context: a phase costs a few round trips, a dry run
lists exactly what a real run would change, and a rerun with nothing to do changes nothing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from bootstrap.artifacts import upstream
from bootstrap.artifacts.bundle import ETCD_PACKAGES, Bundle, packages_to_install
from bootstrap.artifacts.upstream import ARCHES
from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase
from bootstrap.engine.result import Status
from bootstrap.errors import PhaseError
from bootstrap.render.node import (
    CHECKSUM_STAMPS,
    CONTAINERD_CONFIG,
    CRICTL_CONFIG,
    FILE_IDENTITY,
    MODULES_FILE,
    SYSCTL_FILE,
    checksum_stamp,
    containerd_config,
    crictl_yaml,
    modules_conf,
    registry_files,
    required_sysctls,
    stamped_sha256_script,
    sysctl_conf,
)
from bootstrap.render.templates import render_template
from bootstrap.spec.model import EtcdMode
from bootstrap.transport.base import CommandResult

DEB_CACHE = "/var/cache/kbootstrap/debs"
RUNTIME_SUPPORT_PACKAGES = ("conntrack", "socat", "ethtool", "ebtables", "iptables")
RUNTIME_PACKAGES = ("containerd", "runc", *RUNTIME_SUPPORT_PACKAGES)
LOCAL_BIN, LOCAL_SBIN, CNI_BIN = "/usr/local/bin", "/usr/local/sbin", "/opt/cni/bin"
CONTAINERD_UNIT = "/etc/systemd/system/containerd.service"
IMAGE_CACHE = "/var/cache/kbootstrap/images"
CNI_PACKAGE = "containernetworking-plugins"
BIN_DIR = "/usr/bin"
POLICY_RC = "/usr/sbin/policy-rc.d"


# ---- kernel ------------------------------------------------------------------------------------
def run_kernel(ctx: RunContext) -> None:
    written = ctx.ensure_files([(MODULES_FILE, modules_conf(), 0o644), (SYSCTL_FILE, sysctl_conf(ctx.spec), 0o644)])
    wanted = required_sysctls(ctx.spec)
    names = " ".join(shlex.quote(k) for k in wanted)
    facts = ctx.fact(
        f"for k in {names}; do printf '%s=%s\\n' \"$k\" \"$(sysctl -n \"$k\" 2>/dev/null)\"; done\n"
        "echo swaps=$(($(wc -l < /proc/swaps) - 1))"
    )
    if facts is None:
        ctx.skip("apply sysctls, swap off", "not a live host (--rootfs)")
        return
    seen = dict(line.split("=", 1) for line in facts.stdout.splitlines() if "=" in line)
    wrong = {k: v for k, v in wanted.items() if seen.get(k) != str(v)}
    swap_on = seen.get("swaps", "0") not in ("0", "")
    steps = [
        # Modules come from the host kernel; a container node may not load them itself.
        "if command -v modprobe >/dev/null; then for m in overlay br_netfilter; do modprobe \"$m\" 2>/dev/null || true;"
        " done; fi",
    ]
    if any(written.values()):
        steps.append("sysctl --system >/dev/null 2>&1 || true")
    steps += [f"sysctl -q -w {shlex.quote(f'{k}={v}')}; echo {shlex.quote(f'CHANGED sysctl {k}={v}')}"
              for k, v in wrong.items()]
    if swap_on:
        steps.append(
            "swapoff -a && echo 'CHANGED swapoff'\n"
            "if grep -qE '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab 2>/dev/null; then\n"
            "  sed -i.kbootstrap -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \\1/' /etc/fstab"
            " && echo 'CHANGED /etc/fstab swap'\nfi"
        )
    if wrong or swap_on or any(written.values()):
        items = [*(f"sysctl {k}={v}" for k, v in wrong.items()), *(["swapoff"] if swap_on else [])]
        ctx.run_change("\n".join(steps), "kernel settings", changes=items)
    else:
        ctx.record("sysctls and swap", Status.UNCHANGED, f"{len(wanted)} sysctls as required, no swap")


# ---- packages from the bundle (or apt when there is none) --------------------------------------
def installed_packages(ctx: RunContext) -> set[str] | None:
    facts = ctx.fact("dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' 2>/dev/null || true")
    if facts is None:
        return None
    return {ln.split()[0] for ln in facts.stdout.splitlines() if len(ln.split()) > 1 and ln.split()[1] == "ii"}


def install_packages(ctx: RunContext, wanted: tuple[str, ...], what: str) -> bool:
    """True when packages are (or, in a dry run, would be) installed."""
    installed = installed_packages(ctx)
    if installed is None:
        ctx.skip(f"install {' '.join(wanted)}", "not a live host (--rootfs)")
        return False
    missing = [p for p in wanted if p not in installed]
    if not missing:
        return False
    # Debian starts daemons on install with their default config (etcd then fails, containerd runs
    # unconfigured): a policy-rc.d that says "no" keeps them down until we have configured them. A
    # policy-rc.d the node already has is put back afterwards; logs go to a private temp dir.
    guard = f"""kb_tmp=$(mktemp -d)
if [ -e {POLICY_RC} ]; then cp -a {POLICY_RC} "$kb_tmp/policy-rc.d"; fi
trap 'if [ -e "$kb_tmp/policy-rc.d" ]; then mv -f "$kb_tmp/policy-rc.d" {POLICY_RC}; else rm -f {POLICY_RC}; fi;
rm -rf "$kb_tmp"' EXIT
printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC}.kb && chmod 755 {POLICY_RC}.kb && mv -f {POLICY_RC}.kb {POLICY_RC}
"""
    if ctx.bundle is None:
        pkgs = " ".join(shlex.quote(p) for p in missing)
        item = f"installed {' '.join(missing)} (apt)"
        ctx.run_change(
            f"{guard}DEBIAN_FRONTEND=noninteractive apt-get install -y -q {pkgs} >/dev/null\n"
            f"echo {shlex.quote('CHANGED ' + item)}",
            what,
            changes=[item],
        )
        return True
    debs = packages_to_install(ctx.bundle, tuple(missing), installed)
    item = "installed " + " ".join(d.package for d in debs)
    if not ctx.dry_run:
        _push_debs(ctx, ctx.bundle, [d.path for d in debs])
    paths = " ".join(shlex.quote(f"{DEB_CACHE}/{d.path.removeprefix('debs/')}") for d in debs)
    sums = "\n".join(f"{d.sha256}  {DEB_CACHE}/{d.path.removeprefix('debs/')}" for d in debs)
    ctx.run_change(
        f"""{guard}sha256sum --quiet -c - <<'SUMS'
{sums}
SUMS
if ! DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold {paths} >"$kb_tmp/dpkg.log" 2>&1; then
  tail -3 "$kb_tmp/dpkg.log" >&2; exit 1
fi
echo {shlex.quote("CHANGED " + item)}
""",
        what,
        changes=[item],
    )
    return True


def _push_debs(ctx: RunContext, bundle: Bundle, rels: list[str]) -> None:
    """The bundle's packages this node lacks, copied into its package cache (checksums known)."""
    check = "\n".join(f"{bundle.sha256(r)}  {DEB_CACHE}/{r.removeprefix('debs/')}" for r in rels)
    have = ctx.fact(f"sha256sum -c - 2>/dev/null <<'SUMS' | sed -n 's/: OK$//p'\n{check}\nSUMS\n")
    present = set(have.stdout.split()) if have is not None else set()
    missing = [r for r in rels if f"{DEB_CACHE}/{r.removeprefix('debs/')}" not in present]
    if missing:
        ctx.target.write_many(
            [(f"{DEB_CACHE}/{r.removeprefix('debs/')}", (bundle.root / r).read_bytes(), 0o644, None) for r in missing]
        )


# ---- files from the bundle, checksum verified ----------------------------------------------------
@dataclass(frozen=True)
class Install:
    """A file from the bundle (or the upstream release) at a path on the node, with its sha256."""

    src: Path
    sha256: str
    dest: str
    mode: int = 0o755


def install_files(ctx: RunContext, items: list[Install]) -> list[str]:
    """Put every item on the node unless it already has that checksum; returns the paths that
    changed (or would). One fact script checks them all: hashing a 60 MB binary on every run costs
    more than the rest of a rerun, so a stamp records the checksum with the file's size, mtime and
    inode (render/node.py's FILE_IDENTITY), and the hash is recomputed whenever any of them changed."""
    if not items:
        return []
    if not ctx.live:
        for it in items:
            ctx.skip(it.dest, "not a live host (--rootfs): binaries are installed by a run on the node")
        return []
    checks = "\n".join(f"printf '%s %s\\n' \"$({stamped_sha256_script(it.dest)})\" {shlex.quote(it.dest)}"
                       for it in items)
    checked = _sums(ctx.fact(checks))
    have = {path: sha for path, (_, sha) in checked.items()}
    stamped = {path for path, (how, _) in checked.items() if how == "stamped"}
    todo = [it for it in items if have.get(it.dest) != it.sha256]
    for it in items:
        if it not in todo:
            ctx.record(it.dest, Status.UNCHANGED)
    for it in todo:
        ctx.record(it.dest, Status.CREATED if have.get(it.dest, "-") == "-" else Status.UPDATED,
                   f"sha256 {it.sha256[:12]}")
    if not ctx.dry_run and todo:
        ctx.flush()
        ctx.target.write_many([(it.dest, it.src.read_bytes(), it.mode, None) for it in todo])
        verify = "\n".join(f"echo \"hashed $(sha256sum {shlex.quote(it.dest)} | cut -d' ' -f1) {it.dest}\""
                           for it in todo)
        got = _sums(ctx.fact(verify, now=True))
        bad = [it.dest for it in todo if got.get(it.dest, ("", ""))[1] != it.sha256]
        if bad:
            raise PhaseError(f"checksum mismatch after copy to {ctx.name}: {', '.join(bad)}")
    _write_stamps(ctx, [it for it in items if it in todo or it.dest not in stamped])
    return [it.dest for it in todo]


def _sums(result: CommandResult | None) -> dict[str, tuple[str, str]]:
    """`HOW SHA256 PATH` lines -> {path: (how, sha256)}: how is stamped, hashed or missing ("-")."""
    lines = result.stdout.splitlines() if result is not None else []
    return {w[2]: (w[0], w[1]) for w in (line.split(" ", 2) for line in lines) if len(w) == 3}


def _write_stamps(ctx: RunContext, items: list[Install]) -> None:
    """Our checksum cache on the node: bookkeeping, not a change to report; only stale stamps are written."""
    if ctx.dry_run or not ctx.live or not items:
        return
    lines = [f"mkdir -p {CHECKSUM_STAMPS}"] + [
        f"p={shlex.quote(it.dest)}; f={shlex.quote(checksum_stamp(it.dest))}; "
        f"s=\"{it.sha256} $({FILE_IDENTITY} \"$p\")\"; "
        f'[ "$(cat "$f" 2>/dev/null)" = "$s" ] || printf "%s" "$s" > "$f"'
        for it in items
    ]
    ctx.bookkeeping("\n".join(lines))


def from_bundle(ctx: RunContext, names: list[str], dest_dir: str) -> list[Install]:
    assert ctx.bundle is not None
    out = []
    for name in names:
        src = ctx.bundle.binary(name)
        if src is None:
            raise PhaseError(f"{name}: artifact missing (the bundle at {ctx.bundle.root} has no bin/{name})",
                             hint="rebuild it with `kbootstrap bundle create --components DIR`")
        out.append(Install(src, ctx.bundle.sha256(f"bin/{name}"), f"{dest_dir}/{name.rsplit('/', 1)[-1]}"))
    return out


# ---- container runtime -------------------------------------------------------------------------
def containerd_major(ctx: RunContext) -> int:
    """The installed containerd's major version (a fact: a dry run renders what a real run would)."""
    v = ctx.fact("containerd --version 2>/dev/null | grep -oE ' v?[0-9]+\\.' | head -1 | tr -dc 0-9")
    return int(v.stdout.strip() or 1) if v is not None else 1


CRI_WAIT = """
# The CRI socket must answer with the cri plugin loaded (what the kubelet talks to).
for i in $(seq 1 50); do
  if ctr --address /run/containerd/containerd.sock plugins ls 2>/dev/null \\
     | grep -qE 'io.containerd.grpc.v1[[:space:]]+cri[[:space:]].*ok'; then exit 0; fi
  sleep 0.2
done
echo "containerd's CRI plugin is not answering on /run/containerd/containerd.sock" >&2; exit 1
"""


def run_container_runtime(ctx: RunContext) -> None:
    """containerd (the component build's with the bundle's runtime, else Debian's), its config with
    the inventory's registry mirrors, crictl; restarted only when one of them changed."""
    changed: list[str] = []
    unit_changed = False
    if ctx.bundle is not None and ctx.bundle.has_runtime:
        install_packages(ctx, RUNTIME_SUPPORT_PACKAGES, "installing the container runtime's tools")
        changed += install_files(ctx, [
            *from_bundle(ctx, ["containerd", "containerd-shim-runc-v2", "ctr", "crictl"], LOCAL_BIN),
            *from_bundle(ctx, ["runc"], LOCAL_SBIN),
        ])
        unit = render_template("containerd/containerd.service.j2", binary=f"{LOCAL_BIN}/containerd").encode()
        unit_changed = ctx.ensure_file(CONTAINERD_UNIT, unit, 0o644)
        major = 2
    else:
        install_packages(ctx, RUNTIME_PACKAGES, "installing the container runtime")
        major = containerd_major(ctx)
    written = ctx.ensure_files(
        [
            (CONTAINERD_CONFIG, containerd_config(ctx.spec, major), 0o644),
            (CRICTL_CONFIG, crictl_yaml(), 0o644),
            *registry_files(ctx.spec),  # read by containerd without a restart
        ]
    )
    if written[CONTAINERD_CONFIG]:
        changed.append(CONTAINERD_CONFIG)
    if unit_changed:
        changed.append(CONTAINERD_UNIT)
    why = ", ".join(p.rsplit("/", 1)[-1] for p in changed)
    ctx.service("containerd", restart=bool(changed), why=f"{why} changed", daemon_reload=unit_changed)
    if ctx.live and not ctx.dry_run:
        result = ctx.fact(CRI_WAIT, timeout=30, now=True)
        if result is not None and not result.ok:
            raise PhaseError(
                f"containerd on {ctx.name}: {result.stderr.strip()}", hint="see `journalctl -u containerd`"
            )
    import_images(ctx)


def import_images(ctx: RunContext) -> None:
    """Without a registry mirror, the bundle's images are imported into containerd (the k8s.io
    namespace the kubelet uses), those it does not hold yet."""
    if ctx.bundle is None or not ctx.bundle.images or ctx.spec.container_runtime.registries_mirrors:
        return
    have = ctx.fact("ctr -n k8s.io images ls -q 2>/dev/null || true")
    if have is None:
        ctx.skip("images", "not a live host (--rootfs): images are imported by a run on the node")
        return
    present = set(have.stdout.split())
    missing = {ref: rel for ref, rel in ctx.bundle.images.items() if ref not in present}
    for ref in sorted(present & set(ctx.bundle.images)):
        ctx.record(f"image {ref}", Status.UNCHANGED)
    if not missing:
        return
    archives = [Install(ctx.bundle.root / rel, ctx.bundle.sha256(rel), f"{IMAGE_CACHE}/{rel.rsplit('/', 1)[-1]}",
                        0o600) for rel in missing.values()]
    if not ctx.dry_run:
        install_files(ctx, archives)
    imports = "\n".join(
        f"ctr -n k8s.io images import {shlex.quote(a.dest)} >/dev/null && echo {shlex.quote(f'CHANGED image {ref}')}"
        for ref, a in zip(missing, archives, strict=True)
    )
    ctx.run_change(imports, "importing images", changes=[f"image {ref}" for ref in missing])


# ---- binaries ----------------------------------------------------------------------------------
def _binary_phase(name: str) -> Phase:
    def run(ctx: RunContext) -> None:
        if not ctx.live:
            ctx.skip(f"{BIN_DIR}/{name}", "not a live host (--rootfs): binaries are installed by a run on the node")
            return
        if ctx.bundle is None:
            # No bundle: the upstream release, downloaded once on the control machine, pinned sha256.
            arch_fact = ctx.fact("uname -m")
            arch = arch_fact.stdout.strip() if arch_fact is not None else "x86_64"
            if arch not in ARCHES:
                raise PhaseError(f"{name}: no upstream build for machine type {arch!r} on {ctx.name}")
            src, want = upstream.fetch(name, ctx.spec.kubernetes_version, ARCHES[arch], base_url=ctx.artifact_base_url)
            install_files(ctx, [Install(src, want, f"{BIN_DIR}/{name}")])
            return
        bundled = ctx.bundle.binary(name)
        if bundled is None:
            raise PhaseError(
                f"{name}: artifact missing (the bundle at {ctx.bundle.root} has no bin/{name})",
                hint="add it with `kbootstrap bundle create --binaries-from DIR` (or --components DIR), "
                f"or skip with --skip-phases binaries/{name}",
            )
        install_files(ctx, [Install(bundled, ctx.bundle.sha256(f"bin/{name}"), f"{BIN_DIR}/{name}")])

    return Phase(name, f"Install {name} (checksum verified)", run)


def run_cni(ctx: RunContext) -> None:
    if ctx.bundle is not None and ctx.bundle.cni_plugins:
        install_files(ctx, from_bundle(ctx, [f"cni/{p}" for p in ctx.bundle.cni_plugins], CNI_BIN))
        return
    installing = install_packages(ctx, (CNI_PACKAGE,), "installing CNI plugins")
    # Debian installs plugins in /usr/lib/cni; the kubelet and containerd look in /opt/cni/bin.
    links = ctx.fact(
        'for f in /usr/lib/cni/*; do t=/opt/cni/bin/$(basename "$f"); '
        '[ "$(readlink "$t" 2>/dev/null)" = "$f" ] || echo "$t"; done'
    )
    if links is None:
        ctx.skip("link CNI plugins", "not a live host (--rootfs)")
        return
    if not links.stdout.strip() and not (ctx.dry_run and installing):
        return
    ctx.run_change(
        """
mkdir -p /opt/cni/bin
for f in /usr/lib/cni/*; do
  t=/opt/cni/bin/$(basename "$f")
  [ "$(readlink "$t" 2>/dev/null)" = "$f" ] || { ln -sfn "$f" "$t"; echo "CHANGED $t"; }
done
""",
        "link CNI plugins into /opt/cni/bin",
        changes=links.stdout.split() or ["CNI plugins linked into /opt/cni/bin"],
    )


def run_etcd_packages(ctx: RunContext) -> None:
    """etcd members in host mode need the etcd binaries (Debian's etcd-server / etcd-client)."""
    if not ctx.is_etcd or ctx.spec.etcd_mode != EtcdMode.HOST or ctx.spec.etcd_external:
        ctx.skip("etcd packages", "not an etcd member in host mode")
        return
    if ctx.bundle is not None and ctx.bundle.has_etcd:  # kubeadm's pinned etcd, from the component build
        install_files(ctx, from_bundle(ctx, ["etcd", "etcdctl", "etcdutl"], LOCAL_BIN))
        return
    # policy-rc.d keeps Debian's default etcd from starting; the etcd phase then writes our unit
    # as /etc/systemd/system/etcd.service, which takes the place of the package's.
    install_packages(ctx, ETCD_PACKAGES, "installing etcd")


KERNEL = Phase("kernel", "Load kernel modules, set sysctls (ip_forward), turn swap off", run_kernel, fleet_only=True)
CONTAINER_RUNTIME = Phase(
    "container-runtime",
    "Install and configure containerd (SystemdCgroup, sandbox image) and crictl",
    run_container_runtime,
    fleet_only=True,
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
    fleet_only=True,
)
