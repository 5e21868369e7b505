"""Running the project's playbooks with ansible-runner: a private data dir per run, pipelining on,
host keys checked against the inventory's known_hosts, events collected into our reports."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.ansible.events import EventCollector, last_line
from bootstrap.engine.result import PhaseResult
from bootstrap.errors import RequirementError, TransportError


def playbooks_dir() -> Path:
    """The project's playbooks/: next to the package in a checkout, or shipped inside the wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_playbooks", here.parent / "playbooks"):
        if (candidate / "cluster.yml").is_file():
            return candidate
    raise RequirementError(
        "the kbootstrap playbooks are not installed (no playbooks/cluster.yml)",
        hint="run from a kbootstrap checkout, or install a wheel that ships them",
    )


@dataclass
class PlaybookRun:
    rc: int
    status: str
    seconds: float
    collector: EventCollector


def run_playbook(
    inventory: str | Path,
    playbook: str,
    *,
    hosts: list[str],
    limit: Iterable[str] | None = None,
    extravars: Mapping[str, Any] | None = None,
    forks: int = 64,
    check: bool = False,
    tofu: bool = False,
    on_phase: Callable[[str, PhaseResult], None] | None = None,
    on_host_failed: Callable[[str, str], None] | None = None,
    timeout: int | None = None,
    verbosity: int = 0,
    become: bool = False,
    vault_password_file: str | None = None,
) -> PlaybookRun:
    """Run playbooks/PLAYBOOK with ansible-runner (private data dir in a temp dir, pipelining on, host
    keys checked against the inventory's known_hosts) and collect its events."""
    import ansible_runner

    if shutil.which("ansible-playbook") is None:
        raise RequirementError(
            "ansible-playbook not found: the ansible transport needs ansible-core",
            hint="pip install ansible-core (in the same environment as kbootstrap)",
        )
    book = playbooks_dir() / playbook
    inv = Path(inventory).resolve()
    collector = EventCollector(hosts, on_phase=on_phase, on_host_failed=on_host_failed)
    extra = dict(extravars or {})
    extra.setdefault("kbootstrap_inventory", str(inv))
    if tofu:
        extra["kbootstrap_ssh_strict"] = "accept-new"  # OpenSSH's TOFU: unknown keys recorded, changed refused
    # ansible-playbook's own flags for what kbootstrap's -b and --vault-password-file ask.
    words = [*(["--check"] if check else []), *(["--become"] if become else []),
             *(["--vault-password-file", shlex.quote(str(Path(vault_password_file).resolve()))]
               if vault_password_file else [])]
    cmdline = " ".join(words) or None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kbootstrap-ansible-") as pdd:
        envvars = {
            "ANSIBLE_CONFIG": str(playbooks_dir() / "ansible.cfg"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCAL_TEMP": str(Path(pdd) / "tmp"),
            # SSH masters of this run only: every run makes its own connections, so host keys are
            # verified each time (a master left by an earlier run would skip that), and they are
            # closed when the run ends instead of lingering for ControlPersist.
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(Path(pdd) / "cp"),
            # Our own process may have been started with a different cwd: everything is absolute.
            "KBOOTSTRAP_CWD": os.getcwd(),
        }
        r = ansible_runner.run(
            private_data_dir=pdd,
            project_dir=str(playbooks_dir()),
            playbook=str(book),
            inventory=str(inv),
            extravars=extra,
            envvars=envvars,
            forks=forks,
            limit=",".join(limit) if limit else None,
            cmdline=cmdline,
            event_handler=collector.collect,
            quiet=True,
            timeout=timeout,
            verbosity=verbosity,
        )
        _close_masters(Path(pdd) / "cp")
        rc, status = int(r.rc if r.rc is not None else 1), str(r.status)
        if rc != 0 and not any(rep.failed for rep in collector.reports.values()) and not collector.stats:
            # ansible-playbook failed before any host ran (syntax, inventory): its last words.
            tail = last_line(r.stdout.read() if r.stdout else "") if hasattr(r, "stdout") else ""
            raise TransportError(f"ansible-playbook {playbook} failed (exit {rc}): {tail or status}")
    collector.finish(rc, status)
    return PlaybookRun(rc, status, time.monotonic() - started, collector)


def _close_masters(control_dir: Path) -> None:
    if not control_dir.is_dir():
        return
    for sock in control_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "kbootstrap"],
                       capture_output=True, timeout=10, check=False)

