"""SSH into lab machines with the lab key and host-key checking on (paramiko, RejectPolicy)."""

from __future__ import annotations

import contextlib
import os
import select
import sys
from typing import BinaryIO

import paramiko

from bootstrap.errors import RequirementError, TransportError
from bootstrap.lab.hostcmd import which
from bootstrap.lab.state import LabState, Machine


def connect(lab: LabState, m: Machine, timeout: float = 10) -> paramiko.SSHClient:
    # One retry for a garbled handshake (paramiko's "Invalid packet blocking", seen once in a CI
    # run): never for a refused key, a failed login or an unreachable machine.
    for attempt in (1, 2):
        client = paramiko.SSHClient()
        client.load_host_keys(str(lab.known_hosts_path))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                m.ip, username="root", key_filename=str(lab.key_path), timeout=timeout, banner_timeout=timeout,
                auth_timeout=timeout, allow_agent=False, look_for_keys=False,
            )
            return client
        except (OSError, paramiko.SSHException) as e:
            client.close()
            final = (isinstance(e, (OSError, paramiko.AuthenticationException, paramiko.BadHostKeyException))
                     or attempt == 2)
            if final:
                raise TransportError(f"ssh root@{m.name} ({m.ip}): {e or type(e).__name__}") from None
    raise AssertionError("unreachable")


def run(
    lab: LabState, m: Machine, command: str, stdin: bytes | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run a command, return (exit code, stdout, stderr). Scripts go on stdin (`bash -s`)."""
    client = connect(lab, m)
    try:
        chan = client.get_transport().open_session(timeout=timeout)  # type: ignore[union-attr]
        chan.settimeout(timeout)
        chan.exec_command(command)
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = bytearray(), bytearray()
        while True:
            data = chan.recv(65536)
            if not data:
                break
            out += data
        while True:
            data = chan.recv_stderr(65536)
            if not data:
                break
            err += data
        return chan.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
    except (OSError, paramiko.SSHException) as e:
        raise TransportError(f"ssh root@{m.name}: {e or type(e).__name__}") from None
    finally:
        client.close()


def stream(lab: LabState, m: Machine, command: str, stdin: BinaryIO | None) -> int:
    """Run a command with its output streamed to ours; forward our stdin when it is not a terminal."""
    client = connect(lab, m)
    try:
        chan = client.get_transport().open_session()  # type: ignore[union-attr]
        chan.exec_command(command)
        if stdin is None:
            chan.shutdown_write()
        fd_in = stdin.fileno() if stdin is not None else None
        while not (chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready()):
            watch: list[int | paramiko.Channel] = [chan]
            if fd_in is not None:
                watch.append(fd_in)
            ready, _, _ = select.select(watch, [], [], 0.5)
            if fd_in is not None and fd_in in ready:
                data = os.read(fd_in, 65536)
                if data:
                    chan.sendall(data)
                else:
                    chan.shutdown_write()
                    fd_in = None
            while chan.recv_ready():
                sys.stdout.buffer.write(chan.recv(65536))
            while chan.recv_stderr_ready():
                sys.stderr.buffer.write(chan.recv_stderr(65536))
            sys.stdout.flush()
            sys.stderr.flush()
        return chan.recv_exit_status()
    except (OSError, paramiko.SSHException) as e:
        raise TransportError(f"ssh root@{m.name}: {e or type(e).__name__}") from None
    finally:
        client.close()


def interactive(lab: LabState, m: Machine) -> None:
    """Replace this process with OpenSSH for a real terminal session, pinned to the lab's known_hosts."""
    ssh = which("ssh")
    if ssh is None:
        raise RequirementError("ssh not found (an interactive session needs it)", hint="apt-get install openssh-client")
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    os.execv(ssh, [
        ssh, "-i", str(lab.key_path), "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={lab.known_hosts_path}",
        "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null", f"root@{m.ip}",
    ])
