"""Ansible action plugin: run one kbootstrap step (a fleet phase) on the current host.

It runs on the controller, like `kbootstrap init -i` does: the spec is built from the same inventory
by the same code, the node is reached through this task's connection (become honoured), and
certificates and files come from kbootstrap's own Python. Nothing is shipped to the node but bash
scripts on stdin, so no Python module runs remotely and pipelining settings do not matter here.

    - name: Kernel modules and sysctls
      kbootstrap_phase:
        step: kernel

Result: changed/failed/msg as usual, and `kbootstrap` (the phase report: every item with its status)
for `kbootstrap init --transport ansible` and for anyone registering the result.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

# In a checkout, the playbooks run the kbootstrap next to them (same version as the roles), whatever
# else the Python environment has installed.
_CHECKOUT = Path(__file__).resolve().parents[2]
if (_CHECKOUT / "bootstrap" / "__init__.py").is_file() and str(_CHECKOUT) not in sys.path:
    sys.path.insert(0, str(_CHECKOUT))

try:
    # Imported at plugin load: Ansible's strategy loads action plugins in the main process before
    # forking workers, so every worker inherits these modules instead of importing them again.
    from bootstrap.ansible import steps as kb
    from bootstrap.errors import KbootstrapError
    from bootstrap.transport.ansible_target import AnsibleTarget

    IMPORT_ERROR = ""
except ImportError as exc:  # the controller's Python has no kbootstrap
    IMPORT_ERROR = str(exc)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("step", "inventory", "pki_dir", "source"))
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if IMPORT_ERROR:
            result.update(
                failed=True,
                msg=f"kbootstrap is not importable by this Ansible's Python ({IMPORT_ERROR}): "
                "pip install kbootstrap next to ansible-core",
            )
            return result
        args = self._task.args
        step = str(args.get("step", ""))
        try:
            inp = kb.step_input(task_vars, args, bool(self._task.check_mode))
        except KbootstrapError as exc:
            result.update(failed=True, msg=exc.one_line())
            return result

        # With become, each command's success marker lives on the connection's ONE become plugin
        # (build_become_command sets become.success, which the connection then waits for), so
        # concurrent commands (the validate step's checks) would wait for each other's marker until
        # "Timeout (12s) waiting for privilege escalation prompt". One command at a time then.
        serial: contextlib.AbstractContextManager[object] = (
            threading.Lock() if self._connection.become else contextlib.nullcontext()
        )

        def execute(cmd: str, data: bytes | None) -> tuple[int, str, str]:
            with serial:
                res = self._low_level_execute_command(cmd, sudoable=True, in_data=data)
            if res.get("rc") == 255 and "Connection" in str(res.get("stderr", "")):
                raise AnsibleConnectionFailure(str(res.get("stderr", "")).strip())
            return int(res.get("rc") or 0), str(res.get("stdout", "")), str(res.get("stderr", ""))

        target = AnsibleTarget(inp.host, execute)
        try:
            result.update(kb.run_step(step, inp, target))
        except AnsibleConnectionFailure:
            raise  # Ansible reports the host unreachable
        except Exception as exc:  # a bug must be one line in the report, its traceback in the debug log
            from bootstrap import debuglog

            where = debuglog.record(exc, f"ansible step {step} on {inp.host}")
            result.update(failed=True, msg=f"{step}: {type(exc).__name__}: {exc} ({where})")
        return result
