"""The access description -> RBAC objects (validated by REAL `kubernetes-validate --strict`) and ABAC JSONL."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.rbac import rbac
from bootstrap.errors import ConfigError
from bootstrap.render.rbac import ABAC_VERSION, abac_policy, load_access, parse_access, rbac_objects, rbac_yaml

ACCESS = """
users:
  - name: alice
    groups: [dev]
  - name: bob
    groups: [ops]
roles:
  - name: app-developer
    namespace: dev
    rules:
      - apiGroups: ["", "apps"]
        resources: [pods, pods/log, deployments]
        verbs: [get, list, watch, create, update, patch, delete]
  - name: node-reader
    rules:
      - apiGroups: [""]
        resources: [nodes]
        verbs: [get, list, watch]
      - nonResourceURLs: ["/metrics"]
        verbs: [get]
bindings:
  - role: app-developer
    groups: [dev]
  - role: view
    namespace: prod
    groups: [dev]
  - role: node-reader
    users: [bob]
    serviceAccounts: [monitoring/scraper]
  - role: cluster-admin
    groups: [ops]
"""


def objects() -> list[dict[str, Any]]:
    return rbac_objects(load_access(ACCESS, "access.yaml"))


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in objects() if o["kind"] == kind]


def test_roles_and_bindings_by_scope() -> None:
    kinds = [o["kind"] for o in objects()]
    # Apply order: roles before their bindings.
    assert kinds == ["ClusterRole", "Role", "ClusterRoleBinding", "ClusterRoleBinding", "RoleBinding", "RoleBinding"]
    role = by_kind("Role")[0]
    assert role["metadata"] == {"name": "app-developer", "namespace": "dev",
                                "labels": {"app.kubernetes.io/managed-by": "kbootstrap"}}
    assert role["rules"][0]["apiGroups"] == ["", "apps"] and "pods/log" in role["rules"][0]["resources"]
    cr = by_kind("ClusterRole")[0]
    assert cr["rules"][1] == {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
    rbs = {(o["metadata"]["namespace"], o["roleRef"]["kind"], o["roleRef"]["name"]): o["subjects"]
           for o in by_kind("RoleBinding")}
    dev = {"kind": "Group", "name": "dev", "apiGroup": "rbac.authorization.k8s.io"}
    assert rbs[("dev", "Role", "app-developer")] == [dev]
    # A built-in ClusterRole bound in one namespace only.
    assert rbs[("prod", "ClusterRole", "view")] == [dev]
    crbs = {o["roleRef"]["name"]: o["subjects"] for o in by_kind("ClusterRoleBinding")}
    assert crbs["node-reader"] == [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"},
                                   {"kind": "ServiceAccount", "name": "scraper", "namespace": "monitoring"}]
    assert crbs["cluster-admin"] == [{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}]


def test_only_what_a_user_is_bound_to() -> None:
    alice = load_access(ACCESS, "a").for_user("alice")
    assert {(b.role.name, b.namespace) for b in alice.bindings} == {("app-developer", "dev"), ("view", "prod")}
    assert [r.name for r in alice.roles] == ["app-developer"]
    with pytest.raises(ConfigError, match="'zoe' is not in the description's users"):
        load_access(ACCESS, "a").for_user("zoe")


@pytest.mark.skipif(shutil.which("kubernetes-validate") is None, reason="kubernetes-validate not installed")
def test_manifests_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    path = tmp_path / "rbac.yaml"
    path.write_text(rbac_yaml(load_access(ACCESS, "a")))
    assert len(list(yaml.safe_load_all(path.read_text()))) == 6
    proc = subprocess.run(["kubernetes-validate", "--strict", "-k", "1.34.0", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" passed for resource ") == 6, proc.stdout


def test_abac_jsonl() -> None:
    policy = abac_policy(load_access(ACCESS, "a"))
    lines = policy.jsonl().splitlines()
    parsed = [json.loads(ln) for ln in lines]  # one JSON object per line, no enclosing list
    assert all(p["apiVersion"] == ABAC_VERSION and p["kind"] == "Policy" for p in parsed)
    specs = [p["spec"] for p in parsed]
    assert {"group": "dev", "nonResourcePath": "*", "readonly": True} in specs  # kubectl discovery
    assert {"group": "dev", "apiGroup": "apps", "namespace": "dev", "resource": "deployments",
            "readonly": False} in specs
    assert {"group": "dev", "apiGroup": "*", "namespace": "prod", "resource": "*", "readonly": True} in specs
    assert {"user": "bob", "apiGroup": "", "namespace": "*", "resource": "nodes", "readonly": True} in specs
    assert {"user": "system:serviceaccount:monitoring:scraper", "nonResourcePath": "/metrics",
            "readonly": True} in specs
    assert {"group": "ops", "apiGroup": "*", "namespace": "*", "resource": "*", "nonResourcePath": "*"} in specs
    assert len(specs) == len({json.dumps(s, sort_keys=True) for s in specs})  # no duplicates
    # Where ABAC grants more than RBAC, it says so.
    joined = "\n".join(policy.warnings)
    assert "pods/log becomes pods" in joined and "become every verb in ABAC" in joined
    assert "view" in joined and "Secrets" in joined


@pytest.mark.parametrize(("doc", "message"), [
    ({"bindings": []}, "no bindings"),
    ({"bindings": [{"role": "nope", "users": ["a"]}]}, "unknown role 'nope'"),
    ({"bindings": [{"role": "view"}]}, "binds nobody"),
    ({"bindings": [{"role": "view", "groups": ["system:masters"]}]}, "system:masters needs no binding"),
    ({"roles": [{"name": "r", "namespace": "a", "rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]}],
      "bindings": [{"role": "r", "users": ["u"]}]}, "cannot grant non-resource URLs"),
    ({"roles": [{"name": "r", "rules": [{"resources": ["pods"], "verbs": ["hack"]}]}],
      "bindings": [{"role": "r", "users": ["u"]}]}, "unknown verb 'hack'"),
    ({"roles": [{"name": "Bad_Name", "rules": [{"resources": ["pods"], "verbs": ["get"]}]}]}, "not a valid name"),
    ({"roles": [{"name": "r", "namespace": "a", "rules": [{"resources": ["pods"], "verbs": ["get"]}]}],
      "bindings": [{"role": "r", "namespace": "b", "users": ["u"]}]}, "unknown role 'r' in namespace b"),
    ({"bindings": [{"role": "view", "users": ["a"]}, {"role": "view", "users": ["b"]}]}, "rendered twice"),
    ({"bindings": [{"role": "view", "users": "alice"}]}, "must be a list of strings"),
    ({"extra": 1}, "unknown key"),
])
def test_bad_descriptions(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_access(doc, "access.yaml")
    assert message in exc.value.one_line()


# ---- the command --------------------------------------------------------------------------------
def run(*args: str) -> Any:
    group = EdgeGroup()
    group.add_command(rbac)
    return CliRunner().invoke(group, ["rbac", *args])


def test_command_rbac_and_abac(tmp_path: Path) -> None:
    access = tmp_path / "access.yaml"
    access.write_text(ACCESS)
    r = run(str(access))
    assert r.exit_code == 0, r.output
    assert next(o["kind"] for o in yaml.safe_load_all(r.stdout)) == "ClusterRole"
    r = run(str(access), "--user", "alice")
    assert {o["metadata"]["name"] for o in yaml.safe_load_all(r.stdout)} == {"app-developer", "kbootstrap:app-developer",
                                                                           "kbootstrap:view"}
    # ABAC alone: the policy on stdout, warnings on stderr.
    r = run(str(access), "--authorization-mode", "Node,ABAC")
    assert r.exit_code == 0 and all(json.loads(ln)["kind"] == "Policy" for ln in r.stdout.splitlines())
    assert "warning: ABAC:" in r.stderr
    # Both: RBAC on stdout, ABAC to the file.
    r = run(str(access), "--authorization-mode", "Node,RBAC,ABAC")
    assert r.exit_code == 2 and "--abac-file" in r.stderr
    policy = tmp_path / "abac.jsonl"
    r = run(str(access), "--authorization-mode", "Node,RBAC,ABAC", "--abac-file", str(policy))
    assert r.exit_code == 0 and policy.read_text().count("\n") > 5 and "ClusterRole" in r.stdout


def test_command_mode_from_config_and_errors(tmp_path: Path) -> None:
    access = tmp_path / "access.yaml"
    access.write_text(ACCESS)
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text("""apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer:
  extraArgs:
    - name: authorization-mode
      value: Node,ABAC
""")
    r = run(str(access), "--config", str(cfg))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[0])["apiVersion"] == ABAC_VERSION
    for args, message in [
        ([str(tmp_path / "missing.yaml")], "does not exist"),
        ([str(access), "--authorization-mode", "Node,Magic"], "unknown mode 'Magic'"),
        ([str(access), "--authorization-mode", "AlwaysAllow"], "neither RBAC nor ABAC"),
    ]:
        r = run(*args)
        assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("bindings: [{role: nope, users: [a]}]")
    r = run(str(bad))
    assert r.exit_code == 2 and f"{bad}: bindings[0].role: unknown role 'nope'" in r.stderr
