"""Kubespray inventories read by Ansible itself: its inventory plugins (YAML, INI, host ranges), its
group_vars/host_vars precedence, magic variables (inventory_dir, groups, hostvars), its templar and
its vault, so a value means here what it means to `ansible-playbook`.

Nothing is templated until it is read: a variable kbootstrap never reads (a `lookup('password')`,
an ipaddr filter from a collection that is not installed, a vault value without its password) never
stops a run. What is read and cannot be evaluated is one error naming the variable and its file.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.errors import ConfigError

CONTROL_PLANE, ETCD, NODE = "kube_control_plane", "etcd", "kube_node"
# Kubespray's old group names, still accepted by its playbooks.
ROLE_GROUPS = {CONTROL_PLANE: (CONTROL_PLANE, "kube-master", "kube_master"), ETCD: (ETCD,),
               NODE: (NODE, "kube-node")}
# Kubespray's playbooks define k8s_cluster themselves (control planes + nodes) when an inventory
# does not, and its sample's group_vars/k8s_cluster then apply to those hosts.
K8S_CLUSTER = "k8s_cluster"
VAULT_PASSWORD_ENV = "ANSIBLE_VAULT_PASSWORD_FILE"


def plain(value: Any) -> Any:
    """Ansible's tagged values (str subclasses with their origin, ...) as plain Python data."""
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def origin(value: Any) -> str:
    """file:line of a value, when Ansible kept it."""
    try:
        from ansible._internal._datatag._tags import Origin

        tag = Origin.get_tag(value)
    except Exception:  # a private API: without it, errors name the inventory instead
        return ""
    return f"{tag.path}:{tag.line_num}" if tag is not None and tag.path else ""


class LazyVars(Mapping[str, Any]):
    """One host's variables; each is templated (as Ansible would) when first read, then kept."""

    def __init__(self, raw: Mapping[str, Any], templar: Any, where: str) -> None:
        self._raw, self._templar, self._where = raw, templar, where
        self._done: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._done:
            return self._done[key]
        raw = self._raw[key]
        try:
            value = plain(self._templar.template(raw))
        except Exception as exc:  # Ansible's errors: undefined names, unknown filters, vault, syntax
            where = origin(raw) or self._where
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{where}: {key}", f"cannot be evaluated: {first}",
                              hint="set a literal value, or pass --vault-password-file for a vault value"
                              if "vault" in first.lower() else "set a literal value") from None
        self._done[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass(frozen=True)
class AnsibleHost:
    name: str
    roles: frozenset[str]
    vars: LazyVars


@dataclass(frozen=True)
class AnsibleInventory:
    hosts: tuple[AnsibleHost, ...]  # cluster nodes, control planes first, each group as written
    warnings: tuple[str, ...]
    bastions: tuple[str, ...] = ()  # Kubespray's bastion group


def _vault_secrets(password_file: str | None) -> list[Any]:
    path = password_file or os.environ.get(VAULT_PASSWORD_ENV)
    if not path:
        return []
    from ansible.parsing.vault import VaultSecret

    try:
        password = Path(path).expanduser().read_bytes().strip()
    except OSError as exc:
        raise ConfigError("--vault-password-file", f"cannot read {path}: {exc.strerror}") from None
    if not password:
        raise ConfigError("--vault-password-file", f"{path} is empty")
    return [("default", VaultSecret(password))]


def _vault_context(secrets: list[Any]) -> None:
    """Ansible decrypts a vault value when it is used, with the process's one secrets context
    (ansible-playbook sets it once); each load here sets what it was given."""
    from ansible.parsing.vault import VaultSecretsContext

    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:
        current.secrets = secrets


def _forget_warnings() -> None:
    """Ansible says each warning once per process; each load here reports its own."""
    from ansible.utils.display import Display

    for seen in ("_warns", "_deprecations"):
        cache = getattr(Display(), seen, None)
        if isinstance(cache, set):
            cache.clear()


def read(path: Path, plugin: str, vault_password_file: str | None = None) -> AnsibleInventory:
    """The cluster's hosts of a YAML or INI inventory (plugin "yaml" or "ini"), read by Ansible."""
    # Imported with the real stdout/stderr in place: Ansible wraps them once, at import.
    from ansible import constants
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.vars import host_group_vars
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    captured = io.StringIO()
    # Ansible prints its warnings; library code does not, so they are kept for the report.
    with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
        # Only the plugin for this file's format: no inventory scripts run, and a broken file gets
        # that plugin's own message.
        constants.INVENTORY_ENABLED = [plugin]
        # Ansible keeps which group_vars/host_vars files exist for the life of the process; a
        # second load here (a test, a long-lived caller) must see files written since.
        host_group_vars.FOUND.clear()
        host_group_vars.NAK.clear()
        _forget_warnings()
        constants.INVENTORY_UNPARSED_IS_FAILED = True
        loader = DataLoader()
        secrets = _vault_secrets(vault_password_file)
        loader.set_vault_secrets(secrets)
        _vault_context(secrets)
        try:
            manager = InventoryManager(loader=loader, sources=[str(path)])
        except AnsibleError:
            raise ConfigError(str(path), _parse_failure(captured.getvalue(), plugin)) from None
        groups = manager.groups
        members: dict[str, list[str]] = {}
        for role, names in ROLE_GROUPS.items():
            seen: list[str] = []
            for g in names:
                if g in groups:
                    seen += [h.name for h in groups[g].get_hosts() if h.name not in seen]
            members[role] = seen
        if K8S_CLUSTER not in groups:
            manager.add_group(K8S_CLUSTER)
            for role in (CONTROL_PLANE, NODE):
                for g in ROLE_GROUPS[role]:
                    if g in groups:
                        groups[K8S_CLUSTER].add_child_group(groups[g])
        variables = VariableManager(loader=loader, inventory=manager)
        order = list(dict.fromkeys(members[CONTROL_PLANE] + members[ETCD] + members[NODE]))
        hosts = []
        for name in order:
            raw = variables.get_vars(host=manager.get_host(name), include_hostvars=True)
            roles = frozenset(role for role, names in members.items() if name in names)
            hosts.append(AnsibleHost(name, roles, LazyVars(raw, Templar(loader=loader, variables=raw),
                                                           f"{path}: {name}")))
    warnings = tuple(line.removeprefix("[WARNING]: ").strip() for line in captured.getvalue().splitlines()
                     if line.startswith("[WARNING]: "))
    bastions = tuple(h.name for h in groups["bastion"].get_hosts()) if "bastion" in groups else ()
    return AnsibleInventory(tuple(hosts), warnings, bastions)


def _parse_failure(output: str, plugin: str) -> str:
    """The first line of what the plugin said, without Ansible's framing."""
    for line in output.splitlines():
        line = line.removeprefix("[WARNING]: ").strip()
        prefix = f"Failed to parse inventory with '{plugin}' plugin:"
        if line.startswith(prefix):
            return f"not a valid {plugin.upper()} inventory: {line.removeprefix(prefix).strip()}"
    return f"not a valid {plugin.upper()} inventory"
