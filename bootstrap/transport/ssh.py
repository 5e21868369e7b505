"""The SSH transport: one paramiko connection per host for the whole run, hosts in parallel.

Scripts always go on stdin (`bash -s`), never inside `bash -c '...'`: quoting silently breaks on
scripts with single quotes. Host keys are verified against known_hosts files by default; see
`check_host_key` for the rules (unknown -> refused unless TOFU, changed/revoked -> always refused).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

import paramiko

from bootstrap import debuglog
from bootstrap.errors import TransportError
from bootstrap.transport.base import BatchFile, CommandResult, FileState, NodeTarget
from bootstrap.transport.batch import parse_read_batch, read_batch, write_batch
from bootstrap.transport.known_hosts import (
    DEFAULT_KNOWN_HOSTS,
    TOFU_FLAG,
    KnownHostLine,
    check_host_key,
    fingerprint,
    host_entry_names,
    known_key_types,
    load_known_hosts,
    trust_on_first_use,
)

KEEPALIVE_INTERVAL = 10  # seconds between SSH keepalives: gives TCP something to time out on
DEAD_PEER_TIMEOUT = 30  # seconds of unacknowledged data (or silent keepalive probes) before a host counts as gone

R = TypeVar("R")

# paramiko logs a dropped connection at ERROR level; with no handler configured Python would print it
# (and tracebacks) to stderr. We report those failures ourselves, as one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


MAX_PARALLEL_CHANNELS = 6  # exec channels at once per connection (see SSHTarget._channels)
CHANNEL_RETRIES = 5  # a refused channel is retried with backoff (0.05 s .. 0.8 s)


# --------------------------------------------------------------------------------------------------
# Hosts and connections


def default_known_hosts(inventory_known_hosts: str | None = None) -> tuple[str, ...]:
    """The inventory's own known_hosts first (when it has one), then the user's."""
    return ((inventory_known_hosts,) if inventory_known_hosts else ()) + (DEFAULT_KNOWN_HOSTS,)


@dataclass(frozen=True)
class SSHHost:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None  # None: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa
    become: bool = False  # ansible_become: everything runs through `sudo -n`
    known_hosts: tuple[str, ...] = field(default_factory=default_known_hosts)
    connect_timeout: float = 10.0
    tofu: bool = False  # --trust-on-first-use: accept and record unknown keys (never changed ones)

    @property
    def where(self) -> str:
        return f"{self.name} ({self.address}:{self.port})"


def _socket_error(host: SSHHost, e: OSError) -> TransportError:
    if isinstance(e, socket.gaierror):
        why, hint = f"cannot resolve {host.address}", "check ansible_host in the inventory and DNS"
    elif isinstance(e, TimeoutError):
        why, hint = f"timed out after {host.connect_timeout:g}s", "is the machine up and port reachable (firewall)?"
    elif e.errno == errno.ECONNREFUSED:
        why, hint = "connection refused", "is sshd running and listening on that port?"
    elif e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        why, hint = "no route to host", "is the machine up and the address right?"
    else:
        why, hint = e.strerror or str(e) or type(e).__name__, "check the address and network"
    return TransportError(f"cannot reach {host.where}: {why}", hint=hint)


def _open_socket(host: SSHHost) -> socket.socket:
    try:
        sock = socket.create_connection((host.address, host.port), timeout=host.connect_timeout)
    except OSError as e:
        raise _socket_error(host, e) from None
    # A host that dies mid-run must not hang us: TCP keepalive probes while idle, and a cap on how
    # long sent data (our SSH keepalives included) may stay unacknowledged.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    with contextlib.suppress(AttributeError, OSError):  # Linux-only options
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_PEER_TIMEOUT * 1000)
    return sock


def _verify_host_key(host: SSHHost, lines: list[KnownHostLine], names: list[str], key: paramiko.PKey) -> None:
    blob = key.asbytes()
    verdict = check_host_key(lines, names, blob)
    if verdict.status == "unknown" and host.tofu and host.known_hosts:
        verdict = trust_on_first_use(host.known_hosts[0], names, blob)
    ktype, fp = key.get_name(), fingerprint(blob)
    if verdict.status == "ok":
        return
    if verdict.status == "unknown":
        first = os.path.expanduser(host.known_hosts[0]) if host.known_hosts else "a known_hosts file"
        raise TransportError(
            f"host key for {host.where} is not known: {ktype} {fp}",
            hint=f"check the fingerprint on the machine, then add it to {first} or rerun with {TOFU_FLAG}",
        )
    old = verdict.line
    assert old is not None
    if verdict.status == "revoked":
        raise TransportError(
            f"host key for {host.where} is revoked ({ktype} {fp}, {old.path}:{old.lineno})",
            hint="refusing to connect",
        )
    raise TransportError(
        f"host key for {host.where} has changed: the server offers {ktype} {fp}, but {old.path}:{old.lineno} "
        f"has {old.key_type} {fingerprint(old.blob)}",
        hint=f"this may be an attack; remove the old key from {old.path} if the change is expected "
        f"(ssh-keygen -R {names[0]} -f {old.path})",
    )


def _client_keys(host: SSHHost) -> list[tuple[str, paramiko.PKey]]:
    """(label, key) pairs to try: the key file, or the agent then the usual default files."""
    if host.key_file:
        path = os.path.expanduser(host.key_file)
        try:
            return [(path, paramiko.PKey.from_path(path))]
        except paramiko.PasswordRequiredException:
            raise TransportError(
                f"key file {path} for {host.user}@{host.name} is passphrase-protected",
                hint="load it into ssh-agent and leave ansible_ssh_private_key_file unset",
            ) from None
        except (OSError, paramiko.SSHException, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not a usable private key"
            raise TransportError(
                f"cannot load key file {path} for {host.user}@{host.name}: {why}",
                hint="check ansible_ssh_private_key_file",
            ) from None
    keys: list[tuple[str, paramiko.PKey]] = []
    with contextlib.suppress(paramiko.SSHException, OSError):
        keys += [("ssh-agent", k) for k in paramiko.Agent().get_keys()]
    for base in ("id_ed25519", "id_ecdsa", "id_rsa"):
        path = os.path.expanduser(f"~/.ssh/{base}")
        if os.path.isfile(path):
            with contextlib.suppress(OSError, paramiko.SSHException, ValueError):
                keys.append((path, paramiko.PKey.from_path(path)))
    return keys


def _authenticate(host: SSHHost, t: paramiko.Transport) -> None:
    keys = _client_keys(host)
    for _, key in keys:
        try:
            t.auth_publickey(host.user, key)
            return
        except paramiko.AuthenticationException:
            continue
    tried = ", ".join(label for label, _ in keys) or "no keys found (no key file, agent or ~/.ssh/id_*)"
    raise TransportError(
        f"authentication failed for {host.user}@{host.name} ({host.address}:{host.port}) with {tried}",
        hint="check ansible_user and ansible_ssh_private_key_file, and that the public key is in authorized_keys",
    )


def connect(host: SSHHost) -> SSHTarget:
    """Open, verify and authenticate one connection. Raises TransportError with a one-line reason."""
    names = host_entry_names(host.name, host.address, host.port)
    lines = load_known_hosts(host.known_hosts)
    sock = _open_socket(host)
    t = paramiko.Transport(sock)
    try:
        t.banner_timeout = t.handshake_timeout = t.auth_timeout = host.connect_timeout
        prefer = known_key_types(lines, names)
        if prefer:  # ask for the key type we know, so a host with several keys is not "changed"
            sec = t.get_security_options()
            avail = list(sec.key_types)
            first = [k for k in avail if k in prefer or (k.startswith("rsa-sha2-") and "ssh-rsa" in prefer)]
            sec.key_types = first + [k for k in avail if k not in first]
        try:
            t.start_client(timeout=host.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as e:
            why = str(e).replace("banner[", "banner: [") or type(e).__name__
            raise TransportError(
                f"cannot reach {host.where}: SSH handshake failed ({why})",
                hint="is it an SSH server, and does it accept modern algorithms?",
            ) from None
        _verify_host_key(host, lines, names, t.get_remote_server_key())
        try:
            _authenticate(host, t)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise TransportError(
                f"authentication with {host.user}@{host.name} failed: {e or type(e).__name__}",
                hint="check the key file and sshd's logs on the machine",
            ) from None
        t.set_keepalive(KEEPALIVE_INTERVAL)
        target = SSHTarget(host, t)
        if host.become:
            target.check_become()
        return target
    except BaseException:
        t.close()
        raise


def connect_all(
    hosts: Sequence[SSHHost], forks: int = 64, tofu: bool = False
) -> dict[str, SSHTarget | TransportError]:
    """Connect to every host in parallel. Every host gets a target or its error; nothing is raised."""
    if tofu:
        hosts = [h if h.tofu else _replace_tofu(h) for h in hosts]

    def one(h: SSHHost) -> SSHTarget | TransportError:
        try:
            return connect(h)
        except TransportError as e:
            return e
        except Exception as e:  # a bug must not hide the other hosts' results
            log = debuglog.record(e, f"connecting to {h.where}")
            return TransportError(f"{h.where}: unexpected {type(e).__name__}: {e} ({log})")

    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts))), thread_name_prefix="ssh-connect") as pool:
        results = list(pool.map(one, hosts))
    return {h.name: r for h, r in zip(hosts, results, strict=True)}


def _replace_tofu(h: SSHHost) -> SSHHost:
    return replace(h, tofu=True)


def run_on_all(
    targets: Sequence[SSHTarget] | dict[str, SSHTarget], fn: Callable[[SSHTarget], R], forks: int = 64
) -> dict[str, R | BaseException]:
    """fn(target) for every target in parallel; each host's result or exception, in input order."""
    items = list(targets.values()) if isinstance(targets, dict) else list(targets)

    def one(t: SSHTarget) -> R | BaseException:
        try:
            return fn(t)
        except Exception as e:
            return e

    if not items:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(items))), thread_name_prefix="ssh-run") as pool:
        results = list(pool.map(one, items))
    return {t.name: r for t, r in zip(items, results, strict=True)}



class SSHTarget(NodeTarget):
    """One host over one SSH connection: `sudo -n` scripts with become, one exec channel per script.
    Files are read and written in batches (a tar stream each way), never over SFTP: the batch writer
    stages files in a 0700 directory, so a key is never readable by others even for a moment."""

    live = True

    def __init__(self, host: SSHHost, transport: paramiko.Transport) -> None:
        self.host = host
        self.name = host.name
        self._transport = transport
        # sshd refuses channels past MaxSessions (default 10) and frees closed ones asynchronously:
        # callers running commands in parallel share this bound.
        self._channels = threading.BoundedSemaphore(MAX_PARALLEL_CHANNELS)

    # -- plumbing

    def _lost(self, what: str) -> TransportError:
        return TransportError(
            f"connection to {self.host.where} lost during {what}",
            hint="the machine went down or the network dropped; check it and rerun (completed steps are kept)",
        )

    def failure(self, message: str) -> Exception:
        return TransportError(message)

    def _exec(self, command: str, stdin: bytes, *, timeout: float | None, what: str) -> tuple[int, bytes, bytes]:
        """Run command with stdin on a new channel: (exit code, stdout, stderr). Raises on timeout/loss."""
        with self._channels:
            return self._exec_on_channel(command, stdin, timeout=timeout, what=what)

    def _exec_on_channel(
        self, command: str, stdin: bytes, *, timeout: float | None, what: str
    ) -> tuple[int, bytes, bytes]:
        deadline = None if timeout is None else time.monotonic() + timeout
        chan = self._start(command, what)
        out, err = bytearray(), bytearray()

        def expired() -> bool:
            if not self._transport.is_active():
                raise self._lost(what)
            return deadline is not None and time.monotonic() > deadline

        try:
            if len(stdin) <= 1 << 20:  # fits in the server's 2 MiB window: cannot block
                self._send(chan, stdin)
            else:  # big input: send while we read, or a chatty script could deadlock us
                threading.Thread(target=self._send, args=(chan, stdin), daemon=True).start()
            while True:
                try:
                    data: bytes | None = chan.recv(65536)
                except TimeoutError:
                    data = None
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if data:
                    out += data
                elif data == b"":  # EOF (or the channel closed)
                    break
                elif expired():
                    raise TransportError(f"{what} on {self.host.where} timed out after {timeout:g}s")
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            while not chan.status_event.wait(1.0):
                if expired():
                    raise TransportError(f"{what} on {self.host.where} timed out after {timeout:g}s")
            code = chan.recv_exit_status()
            if code == -1:  # closed without an exit status: the connection died, or the process by a signal
                if self._dying():
                    raise self._lost(what)
                err += b"kbootstrap: the remote process ended without an exit status (killed by a signal?)\n"
            return code, bytes(out), bytes(err)
        except (paramiko.SSHException, EOFError, OSError):
            raise self._lost(what) from None
        finally:
            chan.close()

    def _start(self, command: str, what: str) -> paramiko.Channel:
        """A channel running command. Opening a channel or the exec request can fail while the
        connection is fine (sshd at MaxSessions, or too slow to answer on a loaded host): the
        command has not started then, so it is retried with backoff; a dead connection is "lost"."""
        for attempt in range(CHANNEL_RETRIES + 1):
            chan = None
            try:
                chan = self._transport.open_session(timeout=self.host.connect_timeout)
                chan.settimeout(1.0)  # wake up regularly to drain stderr and check deadline / liveness
                chan.exec_command(command)
                return chan
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if chan is not None:
                    chan.close()
                if not self._transport.is_active():
                    raise self._lost(what) from None
                if attempt == CHANNEL_RETRIES:
                    reason = exc.text if isinstance(exc, paramiko.ChannelException) else str(exc) or type(exc).__name__
                    raise TransportError(
                        f"{self.host.where} would not start {what}: {reason}",
                        hint="sshd refused or did not answer a new session; raise MaxSessions or retry when "
                        "the host is less loaded",
                    ) from None
                time.sleep(0.05 * 2**attempt)  # closed channels are freed a moment later
        raise AssertionError("unreachable")

    def _send(self, chan: paramiko.Channel, data: bytes) -> None:
        """All of data, then EOF. Stops quietly if the channel goes away (the reader reports that)."""
        try:
            for i in range(0, len(data), 32768):
                chunk = data[i : i + 32768]
                while chunk:
                    try:
                        n = chan.send(chunk)
                    except TimeoutError:  # window full: the remote is busy; keep going while it lives
                        if chan.closed or not self._transport.is_active():
                            return
                        continue
                    if n == 0:
                        return
                    chunk = chunk[n:]
            chan.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError):
            return

    def _dying(self) -> bool:
        # paramiko closes the channels just before it marks the transport inactive: give it a moment.
        for _ in range(20):
            if not self._transport.is_active():
                return True
            time.sleep(0.05)
        return False

    def _shell(self) -> str:
        return "sudo -n bash -s" if self.host.become else "bash -s"

    def _raw(self, script: str | bytes, what: str, timeout: float | None = None) -> tuple[int, bytes, bytes]:
        data = script.encode() if isinstance(script, str) else script
        return self._exec(self._shell(), data, timeout=timeout, what=what)

    def _checked_raw(self, script: str | bytes, what: str) -> bytes:
        """Run a script of ours; a non-zero exit is an error naming the host and the script's last word."""
        code, out, err = self._raw(script, what)
        if code != 0:
            text = err.decode(errors="replace").strip()
            detail = text.splitlines()[-1] if text else f"exit code {code}"
            raise TransportError(f"{what} on {self.host.where} failed: {detail}")
        return out

    def check_become(self) -> None:
        code, _, _ = self._exec("sudo -n true", b"", timeout=self.host.connect_timeout, what="checking sudo")
        if code != 0:
            raise TransportError(
                f"{self.host.user}@{self.host.name} cannot run sudo without a password (become is set)",
                hint=f"give {self.host.user} NOPASSWD sudo on the machine, or connect as root",
            )

    # -- the transport: run, read many, write many

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        code, out, err = self._raw(script, "a script", timeout)
        return CommandResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        """Regular files' content and mode (None when missing or not a regular file): one round trip."""
        paths = list(dict.fromkeys(paths))
        if not paths:
            return {}
        archive = self._checked_raw(read_batch(paths), f"reading {len(paths)} file(s)")
        try:
            return parse_read_batch(paths, archive)
        except tarfile.TarError as e:
            raise TransportError(f"reading files on {self.host.where}: unreadable reply ({e})") from None

    def write_many(self, files: Sequence[BatchFile]) -> None:
        """Write files (path, data, mode, owner) in one round trip; each atomically, parents made 0755.
        A failure before the renames (bad owner, no space) writes nothing; renames go one directory
        at a time, so a failing rename leaves earlier directories done."""
        if files:
            self._checked_raw(write_batch(files), f"writing {len(files)} file(s)")

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> SSHTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHTarget({self.host.user}@{self.host.where})"
