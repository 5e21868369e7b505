"""The lab's DNS: one dnsmasq bound to the bridge address, answering only from a hosts file we write."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from bootstrap.errors import RequirementError
from bootstrap.lab.hostcmd import pid_alive, run
from bootstrap.lab.state import LabState, write_atomic


def hosts_path(lab: LabState) -> Path:
    return lab.dir / "dns" / "hosts"


def pid_path(lab: LabState) -> Path:
    return lab.dir / "dns" / "dnsmasq.pid"


def render_hosts(lab: LabState) -> str:
    lines = ["# kbootstrap lab DNS; `kbootstrap lab dns remove|add` edits this file"]
    lines += [f"{m.ip} {m.name}.{lab.domain} {m.name}" for m in lab.machines if m.dns]
    return "\n".join(lines) + "\n"


def write_hosts(lab: LabState) -> None:
    write_atomic(hosts_path(lab), render_hosts(lab), mode=0o644)


def _pid(lab: LabState) -> int | None:
    return _pid_in(lab.dir)


def _pid_in(lab_dir: Path) -> int | None:
    """The running dnsmasq of this lab, checked by command line so a recycled pid is not signalled."""
    try:
        pid = int((lab_dir / "dns" / "dnsmasq.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if f"--addn-hosts={lab_dir / 'dns' / 'hosts'}" in cmdline and pid_alive(pid) else None


def is_running(lab: LabState) -> bool:
    return _pid(lab) is not None


def start(lab: LabState) -> None:
    write_hosts(lab)
    if is_running(lab):
        return
    args = [
        "dnsmasq", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
        "--bind-interfaces", f"--listen-address={lab.bridge_ip}", "--port=53",
        f"--addn-hosts={hosts_path(lab)}", f"--domain={lab.domain}", f"--local=/{lab.domain}/",
        "--domain-needed", "--bogus-priv", f"--pid-file={pid_path(lab)}", "--user=root",
    ]
    # dnsmasq daemonises once it has bound the socket and exits non-zero (with a message) if it can't.
    cp = run(args, check=False, timeout=30)
    if cp.returncode != 0:
        msg = (cp.stderr or cp.stdout).strip().splitlines()
        raise RequirementError(
            f"dnsmasq for lab {lab.name} failed on {lab.bridge_ip}:53: {msg[-1] if msg else cp.returncode}",
            hint="is another DNS server bound to all addresses on port 53?",
        )
    deadline = time.monotonic() + 5
    while not is_running(lab) and time.monotonic() < deadline:
        time.sleep(0.05)


def reload(lab: LabState) -> None:
    """Rewrite the hosts file and SIGHUP dnsmasq, which rereads it and clears its cache."""
    write_hosts(lab)
    pid = _pid(lab)
    if pid is None:
        start(lab)
        return
    os.kill(pid, signal.SIGHUP)


def stop(lab: LabState) -> None:
    stop_dir(lab.dir)


def stop_dir(lab_dir: Path) -> None:
    """Stop the lab's dnsmasq knowing only the lab directory (works without a readable state file)."""
    pid = _pid_in(lab_dir)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (lab_dir / "dns" / "dnsmasq.pid").unlink()
