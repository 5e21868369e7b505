"""One lab machine: a copy-on-write overlay on the cached rootfs, booted by systemd-nspawn."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bootstrap.errors import KbootstrapError
from bootstrap.lab import cgroup, initwrap, keys
from bootstrap.lab.hostcmd import need, pid_alive, run
from bootstrap.lab.network import NETNS_DIR
from bootstrap.lab.state import LabState, Machine, write_atomic

PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")


def paths(lab: LabState, m: Machine) -> dict[str, Path]:
    d = m.dir(lab.name)
    return {
        "dir": d, "upper": d / "upper", "work": d / "work", "merged": d / "merged",
        "pid": d / "nspawn.pid", "log": d / "console.log", "containerd": d / "containerd",
    }


# --- overlay --------------------------------------------------------------------------------------

def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def mount_overlay(lab: LabState, m: Machine) -> None:
    p = paths(lab, m)
    for k in ("upper", "work", "merged"):
        p[k].mkdir(parents=True, exist_ok=True)
    if not is_mounted(p["merged"]):
        opts = f"lowerdir={lab.rootfs},upperdir={p['upper']},workdir={p['work']}"
        run(["mount", "-t", "overlay", "overlay", "-o", opts, str(p["merged"])])


def unmount_overlay(merged: Path) -> None:
    if is_mounted(merged) and run(["umount", str(merged)], check=False).returncode != 0:
        run(["umount", "-l", str(merged)], check=False)  # lazy: a straggler still holds it


def _write(root: Path, rel: str, data: str | bytes, mode: int = 0o644) -> None:
    path = root / rel
    if path.is_symlink():  # never write through a link into the shared lower dir's target
        path.unlink()
    write_atomic(path, data, mode)


def prepare(lab: LabState, m: Machine, authorized_key: str) -> str:
    """Write what makes the machine itself (hostname, hosts, resolver, machine-id, host key, root's
    authorized key) into its overlay. Returns its public host key line. Idempotent: a restarted
    machine keeps its host key and machine-id."""
    root = paths(lab, m)["merged"]
    fqdn = f"{m.name}.{lab.domain}"
    _write(root, "etc/hostname", m.name + "\n")
    # Only localhost and itself: other names must come from the lab DNS, so DNS faults are real.
    _write(root, "etc/hosts", f"127.0.0.1 localhost\n::1 localhost ip6-localhost\n{m.ip} {fqdn} {m.name}\n")
    _write(root, "etc/resolv.conf", f"nameserver {lab.bridge_ip}\nsearch {lab.domain}\noptions timeout:1 attempts:2\n")
    mid = root / "etc/machine-id"
    if not mid.read_text().strip():
        _write(root, "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    hk = root / "etc/ssh/ssh_host_ed25519_key"
    if not hk.is_file():
        keys.write_pair(hk, f"root@{m.name}")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    _write(root, "root/.ssh/authorized_keys", authorized_key + "\n", 0o600)
    pub = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return f"{pub[0]} {pub[1]}"


# --- process --------------------------------------------------------------------------------------

def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def find_nspawn(match: re.Pattern[str]) -> dict[int, str]:
    """Running nspawn processes whose machine name matches, by command line: {pid: machine}.
    Found this way rather than by pid file, which can be stale or never written."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            cl = _cmdline(int(d.name))
            if not cl or not cl[0].endswith("systemd-nspawn"):
                continue
            for arg in cl:
                if arg.startswith("--machine=") and match.match(arg[10:]) and pid_alive(int(d.name)):
                    out[int(d.name)] = arg[10:]
    return out


def nspawn_pids(machine: str) -> list[int]:
    return list(find_nspawn(re.compile(rf"^{re.escape(machine)}$")))


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for t in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            kids += [int(x) for x in t.read_text().split()]
    return kids


def _reap(pid: int) -> None:
    # When we started it (same process, e.g. under pytest) it is our child: collect the zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_running(m: Machine) -> bool:
    return bool(nspawn_pids(m.name))


def clear_propagate_dir(m: Machine) -> None:
    """nspawn keeps /run/systemd/nspawn/propagate/NAME while running and deletes it on a clean exit.
    A killed nspawn leaves it, and the next nspawn refuses to delete it when /run is not tmpfs (as
    here: "Attempted to remove disk file system ..."), so the machine would never boot again."""
    shutil.rmtree(PROPAGATE_DIR / m.name, ignore_errors=True)


# Host paths bound read-only into every machine when they exist: /dev/kmsg for the kubelet's OOM
# watcher (nspawn gives a machine none), /lib/modules so modprobe and kubeadm's preflight see the
# host kernel's modules.
HOST_RO_BINDS = ("/dev/kmsg", "/lib/modules")


def nspawn_args(lab: LabState, m: Machine, delegated: list[str]) -> list[str]:
    p = paths(lab, m)
    args = [
        need("systemd-nspawn"), "-D", str(p["merged"]), f"--machine={m.name}",
        # No systemd/machined on the host: don't register, don't move into a scope.
        "--register=no", "--keep-unit", "--capability=all",
        f"--network-namespace-path={NETNS_DIR / m.netns}",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=passive",
        # runc joins a fresh session keyring for every container; nspawn's filter refuses keyctl.
        "--system-call-filter=@keyring",
        # Not -b: the init wrapper is PID 1 until it execs systemd. -b would set this kill signal
        # (SIGRTMIN+3 asks systemd for an orderly poweroff).
        "--kill-signal=SIGRTMIN+3",
    ]
    args += [f"--bind-ro={b}" for b in HOST_RO_BINDS if os.path.exists(b)]
    # containerd's overlayfs snapshotter cannot put its upper dirs on overlayfs (the machine's root):
    # its state lives on the host's file system instead, as kind gives its nodes a /var volume.
    args.append(f"--bind={p['containerd']}:/var/lib/containerd")
    return args + initwrap.argv(delegated)


def start(lab: LabState, m: Machine) -> subprocess.Popen[bytes]:
    p = paths(lab, m)
    clear_propagate_dir(m)
    p["containerd"].mkdir(mode=0o711, exist_ok=True)
    # Written at every start, so a machine made by older code (or before the wrapper changed) boots too.
    _write(p["merged"], initwrap.PATH, initwrap.SCRIPT, 0o755)
    env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="yes")  # lets sysctl -w work inside
    cg = cgroup.prepare(lab.name, m.name)
    args = cgroup.launcher_argv(cg.procs, nspawn_args(lab, m, cg.delegated))
    with open(p["log"], "ab") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, close_fds=True,
        )
    write_atomic(p["pid"], f"{proc.pid}\n")
    return proc


def stop(lab: LabState, m: Machine, *, timeout: float = 15, force: bool = False) -> None:
    kill_pids(nspawn_pids(m.name), m.name, timeout=timeout, force=force)
    cgroup.remove(lab.name, m.name)
    clear_propagate_dir(m)
    with contextlib.suppress(FileNotFoundError):
        paths(lab, m)["pid"].unlink()


def kill_pids(pids: list[int], what: str, *, timeout: float = 15, force: bool = False) -> None:
    """Power off. SIGTERM makes nspawn send SIGRTMIN+3 to the machine's systemd: an orderly shutdown.
    force (or a shutdown slower than timeout) kills the machine's init, which ends its pid namespace."""
    if not force:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            for pid in pids:
                _reap(pid)
            time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            for kid in _children(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        for pid in pids:
            _reap(pid)
        time.sleep(0.05)
    for pid in pids:
        _reap(pid)
    if any(pid_alive(p) for p in pids):
        raise KbootstrapError(f"{what}: nspawn did not exit after SIGKILL")


def ssh_banner(ip: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_ssh(m: Machine, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> str:
    """'up' once sshd sends its banner; 'exited' if nspawn ended; 'timeout' otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ssh_banner(m.ip):
            return "up"
        if (proc.poll() is not None) if proc is not None else not is_running(m):
            return "exited"
        time.sleep(0.2)
    return "timeout"


def boot(lab: LabState, m: Machine, *, timeout: float, attempts: int = 3) -> None:
    """Start the machine and wait for sshd; restart it when it stalls (seen: boot hanging on mounts)."""
    for attempt in range(1, attempts + 1):
        proc = None if is_running(m) else start(lab, m)
        result = wait_ssh(m, timeout, proc)
        if result == "up":
            return
        stop(lab, m, force=True)
        if proc is not None:
            proc.wait()
        if attempt == attempts:
            log = paths(lab, m)["log"]
            tail = _log_tail(log)
            # The lab dir goes when the failed `up` is torn down; keep the console for a post-mortem.
            kept = Path(tempfile.gettempdir()) / f"kbootstrap-{m.name}-console.log"
            with contextlib.suppress(OSError):
                shutil.copyfile(log, kept)
            why = "nspawn exited" if result == "exited" else f"no SSH banner within {timeout:.0f}s"
            raise KbootstrapError(
                f"{m.name} did not answer on {m.ip}:22 after {attempts} boots ({why})"
                + (f"; console: {tail}" if tail else ""),
                hint=f"console log kept in {kept}",
            )


def _log_tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:200] if lines else ""
    return ""
