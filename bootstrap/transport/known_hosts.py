"""SSH host keys: known_hosts parsing, the verdict for a presented key, trust on first use.

Pure logic (no network), unit-tested in tests/unit/test_ssh_hostkeys.py. The rules: an unknown key
is refused unless --trust-on-first-use; a changed or revoked key is always refused.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from bootstrap.errors import TransportError

TOFU_FLAG = "--trust-on-first-use"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"

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
