"""The SSH transport: one paramiko connection per host for the whole run, hosts in parallel.

Scripts always go on stdin (`bash -s`), never inside `bash -c '...'`: quoting silently breaks on
scripts with single quotes. Host keys are verified against known_hosts files by default; see
`check_host_key` for the rules (unknown -> refused unless TOFU, changed/revoked -> always refused).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import hmac
import io
import logging
import os
import posixpath
import re
import shlex
import socket
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

import paramiko

from bootstrap.errors import TransportError
from bootstrap.transport.base import CommandResult, FileState

TOFU_FLAG = "--trust-on-first-use"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
KEEPALIVE_INTERVAL = 10  # seconds between SSH keepalives: gives TCP something to time out on
DEAD_PEER_TIMEOUT = 30  # seconds of unacknowledged data (or silent keepalive probes) before a host counts as gone

R = TypeVar("R")

# paramiko logs a dropped connection at ERROR level; with no handler configured Python would print it
# (and tracebacks) to stderr. We report those failures ourselves, as one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


# --------------------------------------------------------------------------------------------------
# Host keys: pure logic (no network), unit-tested in tests/unit/test_ssh_hostkeys.py


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob: 'SHA256:' + unpadded base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_type_of(blob: bytes) -> str:
    """The key type named inside an SSH public key blob (a length-prefixed string)."""
    if len(blob) < 4:
        return "unknown"
    n = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + n].decode("ascii", errors="replace")


def host_entry_names(name: str, address: str, port: int = 22) -> list[str]:
    """The names a known_hosts line may list for this host, as OpenSSH writes them ([h]:port off 22)."""
    names = [name] if name == address else [name, address]
    return names if port == 22 else [f"[{n}]:{port}" for n in names]


@dataclass(frozen=True)
class KnownHostLine:
    path: str
    lineno: int
    marker: str  # "", "@revoked" or "@cert-authority"
    patterns: str  # the host field as written (may be hashed: |1|salt|hash)
    key_type: str
    blob: bytes

    def matches(self, host: str) -> bool:
        """OpenSSH host matching: hashed entries, comma lists, * ? wildcards and !negation."""
        hit = False
        for pat in self.patterns.split(","):
            if pat.startswith("|1|"):
                try:
                    _, _, salt, digest = pat.split("|", 3)
                    mac = hmac.new(base64.b64decode(salt), host.encode(), hashlib.sha1).digest()
                except (ValueError, TypeError):
                    continue
                if hmac.compare_digest(base64.b64encode(mac).decode(), digest):
                    hit = True
                continue
            negate = pat.startswith("!")
            pat = pat[1:] if negate else pat
            if _wildcard_match(host, pat):
                if negate:
                    return False  # a negated match vetoes the whole line
                hit = True
        return hit


def _wildcard_match(host: str, pattern: str) -> bool:
    # OpenSSH wildcards are only * and ? (fnmatch would also treat [..] as a class: [addr]:port breaks).
    rx = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(rx, host.lower()) is not None


def parse_known_hosts(text: str, path: str) -> list[KnownHostLine]:
    """Every parsable line; comments, blank and malformed lines are skipped (as OpenSSH does)."""
    out: list[KnownHostLine] = []
    for i, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = ""
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except ValueError:
            continue
        out.append(KnownHostLine(path, i, marker, fields[0], fields[1], blob))
    return out


def load_known_hosts(paths: Iterable[str]) -> list[KnownHostLine]:
    """Lines of all files, in order; a missing file is simply empty."""
    out: list[KnownHostLine] = []
    for p in paths:
        path = os.path.expanduser(p)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                out += parse_known_hosts(fh.read(), path)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise TransportError(f"cannot read known_hosts file {path}: {e.strerror}") from None
    return out


def known_key_types(lines: Sequence[KnownHostLine], names: Sequence[str]) -> list[str]:
    """Key types known for this host, in file order: we ask the server for these first."""
    types: list[str] = []
    for ln in lines:
        if not ln.marker and ln.key_type not in types and any(ln.matches(n) for n in names):
            types.append(ln.key_type)
    return types


@dataclass(frozen=True)
class HostKeyVerdict:
    status: Literal["ok", "unknown", "changed", "revoked"]
    line: KnownHostLine | None = None  # the line that decided (the old key for "changed")


def check_host_key(lines: Sequence[KnownHostLine], names: Sequence[str], blob: bytes) -> HostKeyVerdict:
    """Decide on a server key. Revoked anywhere -> revoked; an exact match in any file -> ok;
    otherwise any other key listed for one of the names -> changed (the first such line); else unknown.
    @cert-authority lines are ignored (host certificates are not supported)."""
    mine = [ln for ln in lines if any(ln.matches(n) for n in names)]
    for ln in lines:
        if ln.marker == "@revoked" and ln.blob == blob:
            return HostKeyVerdict("revoked", ln)
    for ln in mine:
        if not ln.marker and ln.blob == blob:
            return HostKeyVerdict("ok", ln)
    for ln in mine:
        if not ln.marker:
            return HostKeyVerdict("changed", ln)
    return HostKeyVerdict("unknown")


def known_hosts_line(names: Sequence[str], blob: bytes) -> str:
    return f"{','.join(names)} {key_type_of(blob)} {base64.b64encode(blob).decode()}\n"


MAX_PARALLEL_CHANNELS = 6  # exec channels at once per connection (see SSHTarget._channels)
CHANNEL_RETRIES = 5  # a refused channel is retried with backoff (0.05 s .. 0.8 s)
_tofu_lock = threading.Lock()  # threads of this process; flock below covers other processes


@contextlib.contextmanager
def _dir_lock(directory: str) -> Iterator[None]:
    # Lock the directory itself: the file is replaced by rename, so locking it would lock a stale inode.
    with _tofu_lock:
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def trust_on_first_use(path: str, names: Sequence[str], blob: bytes) -> HostKeyVerdict:
    """Append the key for names to known_hosts file `path`, atomically and under a lock.
    Re-checks under the lock: another host/thread may have added the same key, or a different one."""
    path = os.path.realpath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _dir_lock(directory):
        try:
            with open(path, "rb") as fh:
                current = fh.read()
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            current, mode = b"", 0o644
        verdict = check_host_key(parse_known_hosts(current.decode(errors="replace"), path), names, blob)
        if verdict.status != "unknown":
            return verdict
        if current and not current.endswith(b"\n"):
            current += b"\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(current + known_hosts_line(names, blob).encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return HostKeyVerdict("ok")


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
            return TransportError(f"{h.where}: unexpected {type(e).__name__}: {e}")

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


# --------------------------------------------------------------------------------------------------
# Batched file operations: one exec channel each, and as few remote processes as possible (a process
# start costs milliseconds on a busy machine; a round trip over a LAN costs far less).
#
# Writes: stdin is a short bash script wrapped in `{ ...; exit; }` followed by a tar stream. bash reads a
# script from a pipe one byte at a time and stops after the closing brace, so the script's own `tar -x`
# reads the payload in big blocks, and the trailing `exit` keeps bash from parsing the binary rest.
# Files are unpacked into a dot-named staging directory inside each target directory, chown'ed and
# chmod'ed there, fsync'ed, then renamed into place with one `mv -t` per directory: atomic per file.

BatchFile = tuple[str, bytes, int, str | None]  # path, content, mode, owner ("user" or "user:group")


def _check_path(path: str) -> None:
    if not path.startswith("/") or "\0" in path:
        raise ValueError(f"target paths are absolute: {path}")


def _q(items: Iterable[str]) -> str:
    return " ".join(shlex.quote(x) for x in items)


def write_batch(files: Sequence[BatchFile], token: str | None = None) -> bytes:
    """The stdin for `bash -s` that writes files atomically (see above). Later duplicates win."""
    token = token or os.urandom(6).hex()
    latest: dict[str, BatchFile] = {}
    for f in files:
        _check_path(f[0])
        if f[0].endswith("/") or posixpath.basename(f[0]) in ("", ".", ".."):
            raise ValueError(f"not a file path: {f[0]}")
        latest[posixpath.normpath(f[0])] = f
    stage: dict[str, str] = {}  # target dir -> staging dir
    staged: dict[str, str] = {}  # path -> staged path
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, (_, data, _, _) in latest.items():
            d, base = posixpath.split(path)
            st = stage.setdefault(d, posixpath.join(d, f".kb-{token}.tmp"))
            staged[path] = posixpath.join(st, base)
            info = tarfile.TarInfo(staged[path])
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    by_owner: dict[str, list[str]] = {}
    by_mode: dict[int, list[str]] = {}
    by_dir: dict[str, list[str]] = {}
    for path, (_, _, mode, owner) in latest.items():
        if owner:
            by_owner.setdefault(owner, []).append(staged[path])
        by_mode.setdefault(mode & 0o7777, []).append(staged[path])
        by_dir.setdefault(posixpath.dirname(path), []).append(staged[path])
    stages = _q(stage.values())
    lines = [
        "{",
        "set -u",
        "umask 022",
        f"kb_fail() {{ rm -rf -- {stages}; echo \"kbootstrap: $1\" >&2; exit 1; }}",
        f"mkdir -p -- {_q(stage)} || kb_fail 'cannot create parent directories'",
        f"mkdir -m 700 -- {stages} || kb_fail 'cannot create staging directories'",
        "tar -xPf - --no-same-owner || kb_fail 'cannot unpack files'",
    ]
    # chown before chmod: chown clears setuid/setgid bits.
    lines += [f"chown -- {shlex.quote(o)} {_q(ps)} || kb_fail {shlex.quote(f'cannot chown to {o}')}"
              for o, ps in by_owner.items()]
    lines += [f"chmod {m:o} -- {_q(ps)} || kb_fail 'cannot chmod'" for m, ps in by_mode.items()]
    lines.append(f"sync -- {_q(staged.values())} || kb_fail 'cannot sync'")
    lines += [f"mv -f -t {shlex.quote(d)} -- {_q(ps)} || kb_fail {shlex.quote(f'cannot rename files into {d}')}"
              for d, ps in by_dir.items()]
    lines += [f"rmdir -- {stages}", "exit 0", "}", ""]
    return "\n".join(lines).encode() + buf.getvalue()


def read_batch(paths: Sequence[str]) -> str:
    """A script printing a tar of the regular files among paths (symlinks followed, hard links as copies)."""
    for p in paths:
        _check_path(p)
    # Missing and unreadable files are simply absent from the archive; tar exits 0 with
    # --ignore-failed-read, 1 for files that changed while read, 2 for real trouble.
    return (
        f"tar -cPf - --dereference --hard-dereference --no-recursion --ignore-failed-read -- {_q(paths)} "
        "2>/dev/null\nrc=$?; [ $rc -le 1 ] || { echo 'kbootstrap: tar failed' >&2; exit $rc; }\n"
    )


def parse_read_batch(paths: Sequence[str], archive: bytes) -> dict[str, FileState | None]:
    result: dict[str, FileState | None] = dict.fromkeys(paths)
    wanted: dict[str, list[str]] = {}
    for p in paths:
        wanted.setdefault(posixpath.normpath(p), []).append(p)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for m in tar:
            fh = tar.extractfile(m) if m.isreg() else None
            if fh is None:
                continue
            state = FileState(fh.read(), m.mode & 0o7777)
            for p in wanted.get(posixpath.normpath("/" + m.name.lstrip("/")), []):
                result[p] = state
    return result


# --------------------------------------------------------------------------------------------------


class SSHTarget:
    """One host over one SSH connection: an SFTP channel for file ops as root, `sudo -n` scripts with
    become, and one exec channel per script run. Thread-safe enough for one caller at a time per host."""

    live = True

    def __init__(self, host: SSHHost, transport: paramiko.Transport) -> None:
        self.host = host
        self.name = host.name
        self._transport = transport
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()  # SFTP requests and lazy opening
        # sshd refuses channels past MaxSessions (default 10, the SFTP channel included) and frees
        # closed ones asynchronously: callers running commands in parallel share this bound.
        self._channels = threading.BoundedSemaphore(MAX_PARALLEL_CHANNELS)

    # -- plumbing

    @property
    def use_sftp(self) -> bool:
        return not self.host.become and self.host.user == "root"

    def _lost(self, what: str) -> TransportError:
        return TransportError(
            f"connection to {self.host.where} lost during {what}",
            hint="the machine went down or the network dropped; check it and rerun (completed steps are kept)",
        )

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

    def _script(self, script: str | bytes, what: str, timeout: float | None = None) -> CommandResult:
        code, out, err = self._raw(script, what, timeout)
        return CommandResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def _raw(self, script: str | bytes, what: str, timeout: float | None = None) -> tuple[int, bytes, bytes]:
        data = script.encode() if isinstance(script, str) else script
        return self._exec(self._shell(), data, timeout=timeout, what=what)

    def _checked(self, script: str | bytes, what: str) -> bytes:
        """Run a script of ours; a non-zero exit is an error naming the host and the script's last word."""
        code, out, err = self._raw(script, what)
        if code != 0:
            text = err.decode(errors="replace").strip()
            detail = text.splitlines()[-1] if text else f"exit code {code}"
            raise TransportError(f"{what} on {self.host.where} failed: {detail}")
        return out

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(self._transport)
            except (paramiko.SSHException, EOFError, OSError):
                raise self._lost("opening SFTP") from None
            if self._sftp is None:
                raise self._lost("opening SFTP")
        return self._sftp

    @contextlib.contextmanager
    def _sftp_op(self, what: str, path: str) -> Iterator[paramiko.SFTPClient]:
        with self._lock:
            try:
                yield self._sftp_client()
            except TransportError:
                raise
            except OSError as e:
                # SFTP status errors carry an errno (or none for FX_FAILURE); a dead link shows as an
                # inactive transport, possibly a moment after the channel closed.
                if not self._transport.is_active() or (e.errno is None and self._dying()):
                    raise self._lost(what) from None
                raise TransportError(
                    f"{what} {path} on {self.host.where} failed: {e.strerror or e}"
                ) from None
            except (paramiko.SSHException, EOFError):
                raise self._lost(what) from None

    def check_become(self) -> None:
        code, _, _ = self._exec("sudo -n true", b"", timeout=self.host.connect_timeout, what="checking sudo")
        if code != 0:
            raise TransportError(
                f"{self.host.user}@{self.host.name} cannot run sudo without a password (become is set)",
                hint=f"give {self.host.user} NOPASSWD sudo on the machine, or connect as root",
            )

    # -- the Target protocol

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        return self._script(script, "a script", timeout)

    def read(self, path: str) -> FileState | None:
        _check_path(path)
        if not self.use_sftp:
            return self.read_many([path])[path]
        with self._sftp_op("reading", path) as sftp:
            try:
                st = sftp.stat(path)
            except FileNotFoundError:
                return None
            if st.st_mode is None or not stat.S_ISREG(st.st_mode):
                return None
            with sftp.open(path, "rb") as fh:
                fh.prefetch(st.st_size)
                return FileState(fh.read(), st.st_mode & 0o7777)

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        _check_path(path)
        if owner or not self.use_sftp:  # chown needs names resolved on the host: let the script do it
            self.write_many([(path, data, mode, owner)])
            return
        parent, base = path.rsplit("/", 1)
        parent = parent or "/"
        tmp = f"{parent.rstrip('/')}/.{base}.{os.urandom(4).hex()}.tmp"
        with self._sftp_op("writing", path) as sftp:
            self._sftp_makedirs(sftp, parent)
            try:
                with sftp.open(tmp, "wbx") as fh:
                    fh.set_pipelined(True)
                    fh.chmod(mode)  # sftp-server applies its umask to the open mode; set it explicitly
                    fh.write(data)
                    _sftp_fsync(sftp, fh)
                sftp.posix_rename(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    sftp.remove(tmp)
                raise

    def _sftp_makedirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        try:
            sftp.stat(path)
            return
        except FileNotFoundError:
            pass
        parent = path.rsplit("/", 1)[0] or "/"
        if parent != path:
            self._sftp_makedirs(sftp, parent)
        with contextlib.suppress(OSError):  # lost a race with another writer: fine if it now exists
            sftp.mkdir(path, 0o755)
        sftp.chmod(path, 0o755)

    def mkdir(self, path: str, mode: int) -> None:
        """Create with parents (0755) if missing; an existing directory keeps its mode (as LocalTarget)."""
        _check_path(path)
        if self.use_sftp:
            with self._sftp_op("creating directory", path) as sftp:
                with contextlib.suppress(FileNotFoundError):
                    st = sftp.stat(path)
                    if st.st_mode is not None and stat.S_ISDIR(st.st_mode):
                        return
                self._sftp_makedirs(sftp, path)
                sftp.chmod(path, mode)
            return
        q = shlex.quote(path)
        self._checked(
            f"[ -d {q} ] || {{ umask 022 && mkdir -p -- {q} && chmod {mode:o} -- {q}; }}\n",
            f"creating directory {path}",
        )

    def chmod(self, path: str, mode: int) -> None:
        _check_path(path)
        if self.use_sftp:
            with self._sftp_op("chmod", path) as sftp:
                sftp.chmod(path, mode)
            return
        self._checked(f"chmod {mode:o} -- {shlex.quote(path)}\n", f"chmod {path}")

    def remove(self, path: str) -> None:
        _check_path(path)
        if path.rstrip("/") == "":
            raise ValueError("refusing to remove /")
        # Recursive removal over SFTP costs a round trip per entry; one `rm -rf` is one round trip.
        self._checked(f"rm -rf -- {shlex.quote(path)}\n", f"removing {path}")

    def list_dir(self, path: str) -> list[str] | None:
        _check_path(path)
        if self.use_sftp:
            with self._sftp_op("listing", path) as sftp:
                try:
                    st = sftp.stat(path)
                except FileNotFoundError:
                    return None
                if st.st_mode is None or not stat.S_ISDIR(st.st_mode):
                    return None
                return sorted(sftp.listdir(path))
        q = shlex.quote(path)
        out = self._checked(f"[ -d {q} ] || {{ echo -; exit 0; }}; cd -- {q} && ls -A1\n", f"listing {path}")
        if out == b"-\n":
            return None
        return sorted(x for x in out.decode(errors="surrogateescape").split("\n") if x)

    # -- batches: one exec channel each, whatever the number of files

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        """Regular files' content and mode (None when missing or not a regular file): one round trip."""
        paths = list(dict.fromkeys(paths))
        if not paths:
            return {}
        archive = self._checked(read_batch(paths), f"reading {len(paths)} file(s)")
        try:
            return parse_read_batch(paths, archive)
        except tarfile.TarError as e:
            raise TransportError(f"reading files on {self.host.where}: unreadable reply ({e})") from None

    def write_many(self, files: Sequence[BatchFile]) -> None:
        """Write files (path, data, mode, owner) in one round trip; each atomically, parents made 0755.
        A failure before the renames (bad owner, no space) writes nothing; renames go one directory
        at a time, so a failing rename leaves earlier directories done."""
        if files:
            self._checked(write_batch(files), f"writing {len(files)} file(s)")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._sftp is not None:
                self._sftp.close()
        self._transport.close()

    def __enter__(self) -> SSHTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHTarget({self.host.user}@{self.host.where})"


def _sftp_fsync(sftp: paramiko.SFTPClient, fh: paramiko.SFTPFile) -> None:
    """fsync@openssh.com, so a crash after the rename cannot leave an empty file; best effort (paramiko
    has no public API for it, and servers other than OpenSSH may lack the extension)."""
    with contextlib.suppress(Exception):
        fh.flush()
        sftp._request(paramiko.sftp.CMD_EXTENDED, "fsync@openssh.com", fh.handle)  # type: ignore[attr-defined]
