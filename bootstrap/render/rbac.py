"""Who may do what: one small access description -> RBAC objects, or an ABAC policy file.

The description (YAML; docs/ha.md "User access" has the full reference):

    users:                          # optional: people and robots, with their groups
      - name: alice
        groups: [dev]
    roles:
      - name: app-developer
        namespace: dev              # a Role in `dev`; leave it out for a ClusterRole
        rules:
          - apiGroups: ["", "apps"]
            resources: [pods, pods/log, deployments]
            verbs: [get, list, watch, create, update, patch, delete]
    bindings:
      - role: app-developer         # a role above, or a built-in ClusterRole: view, edit, admin, cluster-admin
        groups: [dev]
        users: [bob]
        serviceAccounts: [ci/deployer]    # NAMESPACE/NAME
      - role: view
        namespace: prod             # a ClusterRole bound in one namespace only (a RoleBinding)
        groups: [dev]

Kubernetes' own objects are built as data and dumped as YAML (always valid YAML, and they pass
`kubernetes-validate --strict`). ABAC can say less than RBAC: only "read-only" or "everything",
and no subresources; every place where the ABAC file grants more than the RBAC rule is reported
as a warning, never silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from bootstrap.errors import ConfigError

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_VERSION = f"{RBAC_GROUP}/v1"
ABAC_VERSION = "abac.authorization.kubernetes.io/v1beta1"
BUILTIN_CLUSTER_ROLES = ("cluster-admin", "admin", "edit", "view")
READ_VERBS = frozenset({"get", "list", "watch"})
KNOWN_VERBS = READ_VERBS | {"create", "update", "patch", "delete", "deletecollection", "*", "bind", "escalate",
                            "impersonate", "use", "approve", "sign", "proxy"}
LABELS = {"app.kubernetes.io/managed-by": "kbootstrap"}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def to_k8s(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        else:
            out["apiGroups"] = list(self.api_groups)
            out["resources"] = list(self.resources)
            if self.resource_names:
                out["resourceNames"] = list(self.resource_names)
        out["verbs"] = list(self.verbs)
        return out


@dataclass(frozen=True)
class Role:
    name: str
    namespace: str  # "" for a ClusterRole
    rules: tuple[Rule, ...]
    builtin: bool = False


@dataclass(frozen=True)
class Subject:
    kind: str  # User | Group | ServiceAccount
    name: str
    namespace: str = ""

    def to_k8s(self) -> dict[str, str]:
        if self.kind == "ServiceAccount":
            return {"kind": "ServiceAccount", "name": self.name, "namespace": self.namespace}
        return {"kind": self.kind, "name": self.name, "apiGroup": RBAC_GROUP}

    @property
    def abac(self) -> dict[str, str]:
        if self.kind == "Group":
            return {"group": self.name}
        if self.kind == "ServiceAccount":
            return {"user": f"system:serviceaccount:{self.namespace}:{self.name}"}
        return {"user": self.name}


@dataclass(frozen=True)
class Binding:
    name: str
    role: Role
    namespace: str  # "" for a ClusterRoleBinding
    subjects: tuple[Subject, ...]


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Access:
    users: tuple[User, ...]
    roles: tuple[Role, ...]  # the ones we define (built-ins are not rendered)
    bindings: tuple[Binding, ...]

    def for_user(self, name: str) -> Access:
        """Only what applies to one user: bindings naming the user or one of the user's groups."""
        user = next((u for u in self.users if u.name == name), None)
        if user is None:
            raise ConfigError("--user", f"{name!r} is not in the description's users",
                              hint="known: " + (", ".join(u.name for u in self.users) or "none"))
        mine = {("User", name), *(("Group", g) for g in user.groups)}
        bindings = tuple(b for b in self.bindings if any((s.kind, s.name) in mine for s in b.subjects))
        used = {(b.role.name, b.role.namespace) for b in bindings}
        roles = tuple(r for r in self.roles if (r.name, r.namespace) in used)
        return Access((user,), roles, bindings)


# ---- parsing -----------------------------------------------------------------------------------
def parse_access(doc: Any, where: str = "access") -> Access:
    if not isinstance(doc, dict):
        raise ConfigError(where, "must be a mapping with users, roles and bindings")
    unknown = set(doc) - {"users", "roles", "bindings", "apiVersion", "kind"}
    if unknown:
        raise ConfigError(f"{where}: {sorted(unknown)[0]}", "unknown key", hint="users, roles, bindings")
    users = tuple(_user(u, f"{where}: users[{i}]") for i, u in enumerate(_list(doc, "users", where)))
    roles: dict[tuple[str, str], Role] = {}
    for i, r in enumerate(_list(doc, "roles", where)):
        role = _role(r, f"{where}: roles[{i}]")
        if (role.name, role.namespace) in roles:
            raise ConfigError(f"{where}: roles[{i}].name", f"{role.name!r} is defined twice"
                              + (f" in {role.namespace}" if role.namespace else ""))
        if role.name in BUILTIN_CLUSTER_ROLES and not role.namespace:
            raise ConfigError(f"{where}: roles[{i}].name", f"{role.name!r} is a built-in ClusterRole",
                              hint="bind it as is, or pick another name")
        roles[(role.name, role.namespace)] = role
    bindings: list[Binding] = []
    seen: dict[tuple[str, str, str], int] = {}
    for i, b in enumerate(_list(doc, "bindings", where)):
        binding = _binding(b, f"{where}: bindings[{i}]", roles)
        kind = "RoleBinding" if binding.namespace else "ClusterRoleBinding"
        key = (kind, binding.namespace, binding.name)
        if key in seen:
            raise ConfigError(f"{where}: bindings[{i}]", f"{kind} {binding.name!r} would be rendered twice "
                              f"(also bindings[{seen[key]}])", hint="give one of them a `name`")
        seen[key] = i
        bindings.append(binding)
    if not bindings:
        raise ConfigError(f"{where}: bindings", "no bindings: nobody would get any access")
    return Access(users, tuple(roles.values()), tuple(bindings))


def load_access(text: str, where: str) -> Access:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(where, "not valid YAML") from None
    return parse_access(doc, where)


def _list(doc: dict[str, Any], key: str, where: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key}", "must be a list")
    return value


def _strs(value: Any, where: str, *, required: bool = False) -> tuple[str, ...]:
    if value is None:
        value = []
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(where, "must be a list of strings")
    if required and not value:
        raise ConfigError(where, "must not be empty")
    return tuple(value)


def _keys(item: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ConfigError(where, "must be a mapping")
    extra = set(item) - allowed
    if extra:
        raise ConfigError(f"{where}.{sorted(extra)[0]}", "unknown key", hint="known: " + ", ".join(sorted(allowed)))
    return item


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or len(value) > 253:
        raise ConfigError(where, f"{value!r} is not a valid name", hint="lower case letters, digits, '-', '.', ':'")
    return value


def _namespace(value: Any, where: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not _NAMESPACE.match(value) or len(value) > 63:
        raise ConfigError(where, f"{value!r} is not a valid namespace name")
    return value


def _user(item: Any, where: str) -> User:
    u = _keys(item, {"name", "groups"}, where)
    if not isinstance(u.get("name"), str) or not u["name"].strip():
        raise ConfigError(f"{where}.name", "is required")
    return User(u["name"], _strs(u.get("groups"), f"{where}.groups"))


def _role(item: Any, where: str) -> Role:
    r = _keys(item, {"name", "namespace", "rules"}, where)
    name = _name(r.get("name"), f"{where}.name")
    namespace = _namespace(r.get("namespace"), f"{where}.namespace")
    rules_in = r.get("rules")
    if not isinstance(rules_in, list) or not rules_in:
        raise ConfigError(f"{where}.rules", "must be a non-empty list")
    rules = []
    for j, raw in enumerate(rules_in):
        w = f"{where}.rules[{j}]"
        x = _keys(raw, {"apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"}, w)
        verbs = _strs(x.get("verbs"), f"{w}.verbs", required=True)
        bad = [v for v in verbs if v not in KNOWN_VERBS]
        if bad:
            raise ConfigError(f"{w}.verbs", f"unknown verb {bad[0]!r}", hint="e.g. get, list, watch, create, *")
        urls = _strs(x.get("nonResourceURLs"), f"{w}.nonResourceURLs")
        if urls:
            if namespace:
                raise ConfigError(f"{w}.nonResourceURLs", "a namespaced Role cannot grant non-resource URLs",
                                  hint="put this rule in a ClusterRole (no namespace)")
            if x.get("resources") or x.get("apiGroups"):
                raise ConfigError(w, "a rule has either resources or nonResourceURLs, not both")
            rules.append(Rule((), (), verbs, non_resource_urls=urls))
            continue
        resources = _strs(x.get("resources"), f"{w}.resources", required=True)
        groups = _strs(x.get("apiGroups", [""]), f"{w}.apiGroups", required=True)
        rules.append(Rule(groups, resources, verbs, _strs(x.get("resourceNames"), f"{w}.resourceNames")))
    return Role(name, namespace, tuple(rules))


def _binding(item: Any, where: str, roles: dict[tuple[str, str], Role]) -> Binding:
    b = _keys(item, {"name", "role", "namespace", "users", "groups", "serviceAccounts"}, where)
    role_name = b.get("role")
    if not isinstance(role_name, str) or not role_name:
        raise ConfigError(f"{where}.role", "is required")
    namespace = _namespace(b.get("namespace"), f"{where}.namespace")
    role = roles.get((role_name, namespace)) if namespace else None
    if role is None:
        role = roles.get((role_name, ""))
    if role is None:
        candidates = [r for (n, _), r in roles.items() if n == role_name]
        if len(candidates) == 1 and not namespace:
            role = candidates[0]
        elif role_name in BUILTIN_CLUSTER_ROLES or role_name.startswith("system:"):
            role = Role(role_name, "", (), builtin=True)
        else:
            raise ConfigError(f"{where}.role", f"unknown role {role_name!r}"
                              + (f" in namespace {namespace}" if namespace else ""),
                              hint="define it under roles, or use view, edit, admin or cluster-admin")
    if role.namespace:
        if namespace and namespace != role.namespace:
            raise ConfigError(f"{where}.namespace", f"Role {role.name!r} lives in {role.namespace}, not {namespace}")
        namespace = role.namespace
    subjects = [Subject("User", u) for u in _strs(b.get("users"), f"{where}.users")]
    subjects += [Subject("Group", g) for g in _strs(b.get("groups"), f"{where}.groups")]
    for sa in _strs(b.get("serviceAccounts"), f"{where}.serviceAccounts"):
        ns, sep, name = sa.partition("/")
        if not sep or not ns or not name:
            raise ConfigError(f"{where}.serviceAccounts", f"{sa!r} is not NAMESPACE/NAME")
        subjects.append(Subject("ServiceAccount", _name(name, f"{where}.serviceAccounts"), _namespace(ns, where)))
    if not subjects:
        raise ConfigError(where, "binds nobody", hint="add users, groups or serviceAccounts")
    if any(s.kind == "Group" and s.name == "system:masters" for s in subjects):
        raise ConfigError(f"{where}.groups", "system:masters needs no binding: it bypasses RBAC entirely")
    default = f"kbootstrap:{role.name}"
    return Binding(_name(b.get("name") or default, f"{where}.name"), role, namespace, tuple(subjects))


# ---- RBAC --------------------------------------------------------------------------------------
def rbac_objects(access: Access) -> list[dict[str, Any]]:
    """ClusterRoles, Roles, ClusterRoleBindings, RoleBindings, in that order (apply order)."""

    def meta(name: str, namespace: str) -> dict[str, Any]:
        m: dict[str, Any] = {"name": name}
        if namespace:
            m["namespace"] = namespace
        m["labels"] = dict(LABELS)
        return m

    roles = sorted(access.roles, key=lambda r: (bool(r.namespace), r.namespace, r.name))
    out: list[dict[str, Any]] = [
        {"apiVersion": RBAC_VERSION, "kind": "Role" if r.namespace else "ClusterRole",
         "metadata": meta(r.name, r.namespace), "rules": [x.to_k8s() for x in r.rules]}
        for r in roles
    ]
    for b in sorted(access.bindings, key=lambda b: (bool(b.namespace), b.namespace, b.name)):
        out.append({
            "apiVersion": RBAC_VERSION,
            "kind": "RoleBinding" if b.namespace else "ClusterRoleBinding",
            "metadata": meta(b.name, b.namespace),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role" if b.role.namespace else "ClusterRole",
                        "name": b.role.name},
            "subjects": [s.to_k8s() for s in b.subjects],
        })
    return out


def rbac_yaml(access: Access) -> str:
    return yaml.safe_dump_all(rbac_objects(access), sort_keys=False, default_flow_style=False)


# ---- ABAC --------------------------------------------------------------------------------------
@dataclass
class AbacPolicy:
    lines: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def jsonl(self) -> str:
        """One JSON object per line, no enclosing list: the API server's --authorization-policy-file."""
        return "".join(json.dumps(p, separators=(",", ":"), sort_keys=False) + "\n" for p in self.lines)


def _policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": ABAC_VERSION, "kind": "Policy", "spec": spec}


_BUILTIN_ABAC: dict[str, tuple[bool, str]] = {
    # role -> (readonly, how ABAC differs from the RBAC role)
    "view": (True, "ABAC's read-only also reads Secrets, which view excludes"),
    "edit": (False, "ABAC grants every verb on every resource, beyond edit"),
    "admin": (False, "ABAC grants every verb on every resource, beyond admin"),
    "cluster-admin": (False, ""),
}


def abac_policy(access: Access) -> AbacPolicy:
    out = AbacPolicy()
    seen: set[str] = set()

    def add(spec: dict[str, Any]) -> None:
        key = json.dumps(spec, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.lines.append(_policy(spec))

    for b in access.bindings:
        ns = b.namespace or "*"
        for s in b.subjects:
            # kubectl needs discovery (/api, /apis, /version): ABAC has no default for it.
            add({**s.abac, "nonResourcePath": "*", "readonly": True})
            if b.role.builtin:
                readonly, note = _BUILTIN_ABAC.get(b.role.name, (True, "unknown built-in: granted read-only"))
                if b.role.name == "cluster-admin" and not b.namespace:
                    add({**s.abac, "apiGroup": "*", "namespace": "*", "resource": "*", "nonResourcePath": "*"})
                else:
                    add({**s.abac, "apiGroup": "*", "namespace": ns, "resource": "*", "readonly": readonly})
                if note:
                    out.warnings.append(f"binding {b.name} ({b.role.name}): {note}")
                continue
            for rule in b.role.rules:
                readonly = set(rule.verbs) <= READ_VERBS
                if not readonly and "*" not in rule.verbs:
                    out.warnings.append(f"binding {b.name} ({b.role.name}): verbs {', '.join(rule.verbs)} "
                                        "become every verb in ABAC")
                if rule.resource_names:
                    out.warnings.append(f"binding {b.name} ({b.role.name}): resourceNames are not expressible in "
                                        "ABAC; the rule covers every object of the resource")
                if rule.non_resource_urls:
                    for url in rule.non_resource_urls:
                        add({**s.abac, "nonResourcePath": url, "readonly": readonly})
                    continue
                for group in rule.api_groups:
                    for resource in rule.resources:
                        base, _, sub = resource.partition("/")
                        if sub:
                            out.warnings.append(f"binding {b.name} ({b.role.name}): ABAC has no subresources; "
                                                f"{resource} becomes {base}")
                        add({**s.abac, "apiGroup": group,
                             "namespace": ns, "resource": base, "readonly": readonly})
    # Dedupe warnings, keep order.
    out.warnings = list(dict.fromkeys(out.warnings))
    return out
