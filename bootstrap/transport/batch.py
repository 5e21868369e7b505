"""Batched file operations as bash scripts: one remote process for many files, whatever the transport
(SSH, an Ansible connection). A process start costs milliseconds on a busy machine; a round trip over
a LAN costs far less.

Writes: stdin is a short bash script wrapped in `{ ...; exit; }` followed by a tar stream. bash reads a
script from a pipe one byte at a time and stops after the closing brace, so the script's own `tar -x`
reads the payload in big blocks, and the trailing `exit` keeps bash from parsing the binary rest.
Files are unpacked into a dot-named staging directory (0700, so a key is never readable by others
even for a moment) inside each target directory, chown'ed and chmod'ed there, fsync'ed, then renamed
into place with one `mv -t` per directory: atomic per file.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import shlex
import tarfile
import time
from collections.abc import Iterable, Sequence

from bootstrap.transport.base import BatchFile, FileState


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
    first: dict[str, str] = {}  # target dir -> its first file (what an error names)
    staged: dict[str, str] = {}  # path -> staged path
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, (_, data, _, _) in latest.items():
            d, base = posixpath.split(path)
            st = stage.setdefault(d, posixpath.join(d, f".kb-{token}.tmp"))
            first.setdefault(d, path)
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
        *(f"mkdir -p -- {shlex.quote(d)} || kb_fail {shlex.quote(f'cannot create the directory of {first[d]}')}"
          for d in stage),
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


def commands_batch(commands: Sequence[str]) -> tuple[str, str]:
    """One script that runs read-only commands one after another, and the marker its output is
    cut at (parse_commands_batch). Each runs in a subshell (a fork, no exec) with stdin from
    /dev/null; its stdout goes between two marker lines with a nonce no output can guess, its
    stderr through a file, copied only when non-empty."""
    mark = "@@kb-" + os.urandom(8).hex()
    lines = ['kb_t=$(mktemp -d) || exit 1', "trap 'rm -rf \"$kb_t\"' EXIT"]
    for i, cmd in enumerate(commands):
        lines.append(f"printf '%s %d out\\n' {mark} {i}; ( eval {shlex.quote(cmd)} ) 2>\"$kb_t/e\" </dev/null; "
                     f"kb_rc=$?; printf '\\n%s %d rc %d\\n' {mark} {i} \"$kb_rc\"; "
                     f"if [ -s \"$kb_t/e\" ]; then printf '%s %d err\\n' {mark} {i}; cat \"$kb_t/e\"; "
                     f"printf '\\n%s %d end\\n' {mark} {i}; fi")
    return "\n".join(lines) + "\n", mark


def parse_commands_batch(stdout: str, mark: str) -> dict[int, tuple[int, str, str]]:
    """The batch's stream -> {index: (exit code, stdout, stderr)}; a command whose rc line never
    came (the script was cut short) is left out."""
    got: dict[int, tuple[int, str, str]] = {}
    pattern = re.compile(rf"^{re.escape(mark)} (\d+) out\n(.*?)\n{re.escape(mark)} \1 rc (\d+)\n"
                         rf"(?:{re.escape(mark)} \1 err\n(.*?)\n{re.escape(mark)} \1 end\n)?", re.S | re.M)
    for m in pattern.finditer(stdout):
        got[int(m[1])] = (int(m[3]), m[2], m[4] or "")
    return got

