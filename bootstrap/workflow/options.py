"""What a fleet run is asked to do: one frozen value built at the CLI edge, and the callbacks
through which a run reports progress (the command decides how to show it; nothing here prints)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bootstrap.engine.result import PhaseResult

DEFAULT_FORKS = 64


@dataclass(frozen=True)
class FleetOptions:
    inventory: str
    flags: Mapping[str, Any] = field(default_factory=dict)  # kubeadm-named spec flags, as build_spec takes them
    forks: int = DEFAULT_FORKS
    tofu: bool = False  # --trust-on-first-use
    dry_run: bool = False
    pki_dir: str | None = None  # the control machine's copy of the shared CAs; default pki/<inventory dir>
    bundle: str | None = None  # an offline bundle; default the inventory's kbootstrap_bundle
    upstream_url: str | None = None
    skip: tuple[str, ...] = ()  # --skip-phases
    limit: tuple[str, ...] = ()  # join: the new hosts; reset: the hosts to reset
    rootfs: str | None = None  # render every host into ROOTFS/<host>/ without contacting any
    only: str | None = None  # `init phase PATH -i`: that phase alone
    token: str | None = None  # join: the bootstrap token to use
    upload_certs: bool = False  # init: kubeadm's --upload-certs
    vault_password_file: str | None = None  # decrypts the inventory's Ansible Vault values
    become: bool = False  # -b/--become: sudo on every host, as ansible-playbook -b
    certificate_key: str | None = None  # init --upload-certs / join of control planes: kubeadm's --certificate-key


@dataclass(frozen=True)
class Events:
    """Progress callbacks, each optional."""

    on_note: Callable[[str], None] | None = None  # a line about the run ("connecting to 5 hosts")
    on_phase: Callable[[str, PhaseResult], None] | None = None  # a host finished a phase
    on_host_failed: Callable[[str, str], None] | None = None  # a host could not be reached
    on_interrupt: Callable[[], None] | None = None  # Ctrl-C: the run stops after the current step
    on_warning: Callable[[str], None] | None = None  # something the user should know before it runs

    def note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)

    def warn(self, text: str) -> None:
        if self.on_warning is not None:
            self.on_warning(text)

    def warn_all(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.warn(text)
