"""A Target over an Ansible connection: what the action plugin hands our phase code.

`execute(cmd, stdin)` is the action plugin's `_low_level_execute_command` (become and the
connection plugin are Ansible's). Every operation is one `bash -s` with the script on stdin (no temp
files, no module shipping). Binary replies (file reads) come back base64-encoded: Ansible hands
command output over as text.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence

from bootstrap.errors import TransportError
from bootstrap.transport.base import BatchFile, CommandResult, FileState, NodeTarget
from bootstrap.transport.batch import parse_read_batch, read_batch, write_batch

Execute = Callable[[str, bytes | None], tuple[int, str, str]]


class AnsibleTarget(NodeTarget):
    live = True

    def __init__(self, name: str, execute: Execute) -> None:
        self.name = name
        self._execute = execute

    def failure(self, message: str) -> Exception:
        return TransportError(message)

    def _bash(self, script: bytes, timeout: float | None = None) -> tuple[int, str, str]:
        cmd = "bash -s" if timeout is None else f"timeout {max(1, int(timeout))} bash -s"
        return self._execute(cmd, script)

    def _checked_bytes(self, script: bytes, what: str) -> str:
        code, out, err = self._bash(script)
        if code != 0:
            lines = err.strip().splitlines()
            raise TransportError(f"{what} on {self.name} failed: {lines[-1] if lines else f'exit code {code}'}")
        return out

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        code, out, err = self._bash(script.encode(), timeout)
        return CommandResult(code, out, err)

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        paths = list(dict.fromkeys(paths))
        if not paths:
            return {}
        # The same tar reader as the SSH transport, base64 on the way back.
        script = "kb_read() {\n" + read_batch(paths) + "}\nkb_read | base64 -w0\nexit ${PIPESTATUS[0]}\n"
        out = self._checked_bytes(script.encode(), f"reading {len(paths)} file(s)")
        try:
            return parse_read_batch(paths, base64.b64decode(out.strip()))
        except (binascii.Error, ValueError, OSError) as exc:
            raise TransportError(f"reading files on {self.name}: unreadable reply ({exc})") from None

    def write_many(self, files: Sequence[BatchFile]) -> None:
        if files:
            self._checked_bytes(write_batch(files), f"writing {len(files)} file(s)")
