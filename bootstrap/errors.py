"""Typed errors. The CLI edge turns each into one line and an exit code; nothing below prints."""

from __future__ import annotations


class KbootstrapError(Exception):
    """Base for every error we expect and explain. exit_code is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(KbootstrapError):
    """Bad input from the user: flags, config files, inventories. Exit 2, like click."""

    exit_code = 2


class ConfigError(UsageError):
    """A config value is invalid; `path` names the field (e.g. networking.podSubnet)."""

    def __init__(self, path: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class ConfigErrors(ConfigError):
    """Several config values are invalid: all of them, each with its location, in one message."""

    def __init__(self, errors: list[ConfigError]) -> None:
        text = "; ".join(e.one_line() for e in errors)
        super().__init__("", f"{len(errors)} problems: {text}")
        self.errors = errors


class RequirementError(KbootstrapError):
    """Something the host running kbootstrap lacks (a binary, root, a free subnet)."""

    exit_code = 3


class PreflightError(KbootstrapError):
    """A preflight check failed on a target."""


class PKIError(KbootstrapError):
    """Certificates or keys are missing, invalid or would be overwritten."""


class TransportError(KbootstrapError):
    """A host could not be reached, refused us, or a remote command failed."""


class PhaseError(KbootstrapError):
    """A phase failed on a host."""
