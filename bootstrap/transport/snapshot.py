"""A rerun's read-ahead: what the last run of the same command asked a host (files read,
directories looked at, fast read-only fact scripts) is asked again when this run connects, in two
round trips per host, and those answers serve this run's identical requests for as long as nothing
has changed: the first write, change script or service action on any host of the run turns every
host's snapshot off, and from then on each request goes to its node. So a rerun with nothing to do
costs a few round trips per host instead of a hundred, and a run that changes something sees live
state from its first change on.

The prediction is a list of paths and scripts (scripts never carry a secret: those go in files),
kept on the control machine, 0600. The answers (file contents, keys among them) live in memory for
the run only. Each answer serves once: a second identical request (a poll waiting for something
to change) goes to the node. A fact that waits for something (`now=True`: health loops) is never
predicted, nor one that took longer than FAST_FACT last time: asked early, it would hold the whole
read-ahead (on a fresh machine, for minutes).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.errors import KbootstrapError
from bootstrap.localfiles import write_atomic
from bootstrap.transport.base import (
    BatchFile,
    CommandResult,
    FileState,
    Target,
    dir_mode_script,
    list_dir_script,
    parse_dir_mode,
    parse_list_dir,
)
from bootstrap.transport.batch import commands_batch, parse_commands_batch

FAST_FACT = 1.0  # seconds: slower facts (waits) are asked live
WARM_TIMEOUT = 30.0


@dataclass
class Asked:
    """One host's read requests, in the order first asked."""

    reads: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> Asked:
        if not isinstance(data, dict):
            return cls()
        return cls(*([str(x) for x in data.get(k) or [] if isinstance(x, str)]
                     for k in ("reads", "dirs", "lists", "facts")))


class SnapshotTarget:
    def __init__(self, inner: Target, predicted: Asked | None, changed: threading.Event, *,
                 prediction_file: Path | None = None) -> None:
        self.inner, self.name, self.live = inner, inner.name, inner.live
        self.prediction_file = prediction_file  # where `asked` is kept for the next run
        self.predicted = predicted or Asked()
        self.asked = Asked()  # this run's requests: the next run's prediction
        self._changed = changed
        self._lock = threading.Lock()
        self._files: dict[str, FileState | None] = {}
        self._dirs: dict[str, int | None] = {}
        self._lists: dict[str, list[str] | None] = {}
        self._facts: dict[str, CommandResult] = {}
        self.served = 0  # requests answered from the snapshot (for tests and traces)

    # ---- the read-ahead -----------------------------------------------------------------------
    def warm(self) -> None:
        """Ask the predicted reads now; a failure only means they are asked live later."""
        p = self.predicted
        try:
            if p.reads:
                self._files = dict(self.inner.read_many(p.reads))
            scripts = [dir_mode_script(d) for d in p.dirs] + [list_dir_script(d) for d in p.lists] + p.facts
            if not scripts:
                return
            script, mark = commands_batch(scripts)
            answers = parse_commands_batch(self.inner.run(script, timeout=WARM_TIMEOUT).stdout, mark)
        except (KbootstrapError, ValueError, OSError):
            self._files, self._dirs, self._lists, self._facts = {}, {}, {}, {}
            return
        for i, (rc, out, err) in answers.items():
            if i < len(p.dirs):
                if rc == 0:
                    self._dirs[p.dirs[i]] = parse_dir_mode(out)
            elif i < len(p.dirs) + len(p.lists):
                if rc == 0:
                    self._lists[p.lists[i - len(p.dirs)]] = parse_list_dir(out)
            elif i < len(scripts):
                self._facts[p.facts[i - len(p.dirs) - len(p.lists)]] = CommandResult(rc, out, err)

    def _valid(self) -> bool:
        return not self._changed.is_set()

    def _note(self, kind: list[str], item: str) -> None:
        with self._lock:
            if item not in kind:
                kind.append(item)

    def _change(self) -> None:
        self._changed.set()

    # ---- reads --------------------------------------------------------------------------------
    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        for path in paths:
            self._note(self.asked.reads, path)
        with self._lock:
            known = {p: self._files.pop(p) for p in paths if p in self._files} if self._valid() else {}
        if known:
            self.served += 1
        missing = [p for p in paths if p not in known]
        return known | (dict(self.inner.read_many(missing)) if missing else {})

    def read(self, path: str) -> FileState | None:
        return self.read_many([path])[path]

    def _take(self, store: dict[str, Any], key: str) -> tuple[bool, Any]:
        """(True, the answer) once per answer while the snapshot holds, else (False, None)."""
        with self._lock:
            if not self._valid() or key not in store:
                return False, None
            self.served += 1
            return True, store.pop(key)

    def dir_mode(self, path: str) -> int | None:
        self._note(self.asked.dirs, path)
        hit, mode = self._take(self._dirs, path)
        return mode if hit else self.inner.dir_mode(path)

    def list_dir(self, path: str) -> list[str] | None:
        self._note(self.asked.lists, path)
        hit, names = self._take(self._lists, path)
        return names if hit else self.inner.list_dir(path)

    def fact(self, script: str, *, timeout: float | None = None, now: bool = False) -> CommandResult:
        if now:  # a wait asked early would hold the read-ahead, and answer with the past
            return self.inner.run(script, timeout=timeout)
        hit, answer = self._take(self._facts, script)
        if hit:
            self._note(self.asked.facts, script)
            result: CommandResult = answer
            return result
        started = time.monotonic()
        result = self.inner.run(script, timeout=timeout)
        if time.monotonic() - started < FAST_FACT:
            self._note(self.asked.facts, script)
        return result

    # ---- changes: the snapshot is over, for every host of the run -------------------------------
    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        self._change()
        return self.inner.run(script, timeout=timeout)

    def write_many(self, files: Sequence[BatchFile]) -> None:
        self._change()
        self.inner.write_many(files)

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        self.write_many([(path, data, mode, owner)])

    def mkdir(self, path: str, mode: int) -> None:
        self._change()
        self.inner.mkdir(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        self._change()
        self.inner.chmod(path, mode)

    def remove(self, path: str) -> None:
        self._change()
        self.inner.remove(path)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


# ---- predictions on the control machine ------------------------------------------------------------
FORMAT = 2  # a file of another format (what an earlier kbootstrap asked) is not used


def load_predictions(path: Path) -> dict[str, Asked]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("hosts"), dict):
        return {}
    return {str(h): Asked.from_json(a) for h, a in data["hosts"].items()}


def save_predictions(path: Path, asked: dict[str, Asked]) -> None:
    """Best effort: a rerun without a prediction is only slower. A host that asked nothing this
    time (a run refused before its phases) keeps what its last run asked."""
    hosts = {h: asdict(a) for h, a in load_predictions(path).items()}
    hosts |= {h: asdict(a) for h, a in asked.items() if a.reads or a.dirs or a.lists or a.facts}
    hosts = dict(sorted(hosts.items()))
    with contextlib.suppress(OSError):
        write_atomic(path, json.dumps({"format": FORMAT, "hosts": hosts}), mode=0o600)
