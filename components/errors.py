"""Errors of the component build. The CLI prints one_line() and exits 1; nothing below prints."""

from __future__ import annotations


class BuildError(Exception):
    def __init__(self, message: str, *, log: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def one_line(self) -> str:
        return f"{self.message} (log: {self.log})" if self.log else self.message


class ModuleRefused(BuildError):
    """The Go module proxy refused a module: named in one line, and the build stops (no substitute)."""

    def __init__(self, module: str, version: str, reason: str, *, log: str | None = None) -> None:
        super().__init__(f"the Go module proxy refuses {module}@{version}: {reason}", log=log)
        self.module = module
        self.version = version


class NotPinned(BuildError):
    """A release's go.mod files are missing or disagree with components/releases.py or kubeadm."""
