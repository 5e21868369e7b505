"""Unexpected errors: one line for the user, the traceback in a debug log whose path the line names.

Expected errors are typed (bootstrap/errors.py) and explained in one line; anything else is a bug or
an environment we did not foresee, and its traceback is what a bug report needs.
"""

from __future__ import annotations

import os
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path

_LOCK = threading.Lock()


def log_path() -> Path:
    base = os.environ.get("KBOOTSTRAP_DEBUG_LOG")
    if base:
        return Path(base)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kbootstrap" / "debug.log"


def record(exc: BaseException, where: str) -> str:
    """Append exc's traceback to the debug log; returns 'traceback in PATH' for the one-line message."""
    path = log_path()
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with _LOCK:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write(f"--- {stamp} pid {os.getpid()} {where}\n{text}\n")
    except OSError:
        return "traceback not saved: the debug log is not writable"
    return f"traceback in {path}"
