"""One phase tree drives every command: `init phase` (with and without -i) offers exactly the tree's
phases and each works; the Ansible playbooks run exactly the tree's steps; `init -i --rootfs`
renders a whole fleet offline; bad per-host values are refused before any host is touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from bootstrap.ansible.playbook import playbooks_dir
from bootstrap.ansible.steps import tree_steps
from bootstrap.cli import main
from bootstrap.phases.tree import INIT, JOIN

SAMPLE = Path(__file__).resolve().parents[2] / "inventories/sample/hosts.yaml"


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def phase_commands() -> list[str]:
    group = main.get_command(click.Context(main), "init").commands["phase"]  # type: ignore[union-attr]
    out = []

    def walk(cmd: click.Command, prefix: str) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix}/{name}" if prefix else name)
        else:
            out.append(prefix)

    walk(group, "")
    return out


def test_init_phase_offers_exactly_the_tree() -> None:
    want = set(INIT.paths())
    got = {p.removesuffix("/all") for p in phase_commands()}
    # A group with one child (etcd: `init phase etcd local`, as kubeadm) is run through that child.
    single = {p for p in want if len(INIT.find(p).children) == 1}
    assert got == want - single


def _inventory(tmp_path: Path, **vars: Any) -> Path:
    inv = tmp_path / "inv"
    inv.mkdir()
    doc = yaml.safe_load(SAMPLE.read_text())
    (inv / "hosts.yaml").write_text(yaml.safe_dump(doc))
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "group_vars/all/all.yml").write_text(yaml.safe_dump({"kube_version": "v1.34.0", **vars}))
    return inv / "hosts.yaml"


@pytest.fixture
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    """--rootfs renders offline: connecting to a host is a bug."""
    from bootstrap.transport import ssh

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("a --rootfs run contacted a host")

    monkeypatch.setattr(ssh, "connect_all", refuse)
    monkeypatch.setattr(ssh, "connect", refuse)


@pytest.mark.parametrize("path", [p for p in phase_commands()])
def test_every_phase_command_works_with_an_inventory(tmp_path: Path, path: str, no_ssh: None) -> None:
    inv = _inventory(tmp_path)
    out = tmp_path / "out"
    common = ["-i", str(inv), "--rootfs", str(out), "--pki-dir", str(tmp_path / "pki"), "-o", "json"]
    if path.startswith("kubeconfig"):  # as kubeadm: kubeconfigs are signed by the CA the certs phase made
        assert invoke("init", "phase", "certs", "all", *common).exit_code == 0
    res = invoke("init", "phase", *path.split("/"), *common)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["hosts"]) == {"node1", "node2", "node3", "node4"}
    ran = {p["name"] for r in data["hosts"].values() for p in r["phases"] if not p["skipped"]}
    top = path.removesuffix("/all")
    assert all(name == top or name.startswith(top + "/") or top.startswith(name + "/") for name in ran), ran


@pytest.mark.parametrize("path", [p for p in phase_commands()])
def test_every_phase_command_works_on_one_node_or_says_it_needs_an_inventory(tmp_path: Path, path: str) -> None:
    top = INIT.find(path.removesuffix("/all").split("/")[0])
    node = ["--rootfs", str(tmp_path / "out"), "--node-name", "cp1", "--apiserver-advertise-address", "10.0.0.5",
            "--control-plane-endpoint", "cp.example.com:6443"]
    if path.startswith(("certs/", "kubeconfig")) and path != "certs/all" and "-ca" not in path:
        # as kubeadm: a leaf alone needs its CA (`certs ca` first), else "couldn't load the ca"
        for ca in ("ca", "etcd-ca", "front-proxy-ca"):
            assert invoke("init", "phase", "certs", ca, *node).exit_code == 0
    res = invoke("init", "phase", *path.split("/"), *node)
    if top.fleet_only:
        assert res.exit_code == 2 and "pass -i INVENTORY" in res.output
    else:
        assert res.exit_code == 0, res.output


def _steps(playbook: str) -> list[str]:
    """The kbootstrap steps a playbook runs, in order, through its roles and imports."""
    play = yaml.safe_load((playbooks_dir() / playbook).read_text())[0]
    out: list[str] = []

    def role(name: str, tasks_from: str = "main") -> None:
        for task in yaml.safe_load((playbooks_dir() / "roles" / name / "tasks" / f"{tasks_from}.yml").read_text()):
            # A role may run one step from alternative tasks (init vs scale.yml's delegated form):
            # consecutive tasks of the same step are that one step.
            if "kbootstrap_phase" in task and out[-1:] != [task["kbootstrap_phase"]["step"]]:
                out.append(task["kbootstrap_phase"]["step"])

    for r in play.get("roles") or []:
        role(r["role"])
    for t in play.get("tasks") or []:
        ref = t.get("ansible.builtin.import_role") or t.get("ansible.builtin.include_role")
        if ref:
            role(ref["name"], ref.get("tasks_from", "main"))
    return out


def test_cluster_playbook_runs_exactly_the_init_tree() -> None:
    assert _steps("cluster.yml") == tree_steps(INIT)


def test_scale_playbook_runs_exactly_the_join_tree() -> None:
    assert _steps("scale.yml") == tree_steps(JOIN)


def test_offline_fleet_render(tmp_path: Path, no_ssh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://laptop-proxy:3128")  # the control machine's: never on nodes
    inv = _inventory(tmp_path, http_proxy="http://proxy.internal:3128", no_proxy="10.0.0.0/8")
    out = tmp_path / "out"
    args = ["init", "-i", str(inv), "--rootfs", str(out), "--pki-dir", str(tmp_path / "pki")]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["node1", "node2", "node3", "node4"]
    worker_keys = sorted(str(p.relative_to(out)) for p in (out / "node4").rglob("*.key"))
    assert worker_keys == [] and (out / "node4/etc/kubernetes/pki/ca.crt").is_file()
    assert (out / "node1/etc/kubernetes/super-admin.conf").is_file()
    assert not (out / "node2/etc/kubernetes/super-admin.conf").exists()
    cas = {(out / n / "etc/kubernetes/pki/ca.crt").read_bytes() for n in ("node1", "node2", "node3", "node4")}
    assert len(cas) == 1  # one cluster CA, made once
    api = (out / "node2/etc/kubernetes/manifests/kube-apiserver.yaml").read_text()
    assert "laptop-proxy" not in api and "http://proxy.internal:3128" in api and "10.0.0.0/8" in api
    again = invoke(*args, "-o", "json")
    assert again.exit_code == 0 and sum(h["changed"] for h in json.loads(again.stdout)["hosts"].values()) == 0


@pytest.mark.parametrize(("var", "value", "message"), [
    ("etcd_data_dir", "/var/lib/etcd;touch /tmp/x", "is not a plain absolute path"),
    ("etcd_data_dir", "relative/dir", "is not a plain absolute path"),
])
def test_hostile_values_are_refused_before_any_host_is_touched(
    tmp_path: Path, no_ssh: None, var: str, value: str, message: str
) -> None:
    inv = _inventory(tmp_path, **{var: value})
    out = tmp_path / "out"
    res = invoke("init", "-i", str(inv), "--rootfs", str(out), "--pki-dir", str(tmp_path / "pki"))
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "pki").exists()


def test_bad_host_names_are_refused_all_at_once(tmp_path: Path, no_ssh: None) -> None:
    inv = tmp_path / "hosts.yaml"
    inv.write_text(yaml.safe_dump({"all": {
        "hosts": {"cp1": {"ansible_host": "127.0.0.1", "ip": "10.0.0.1"},
                  "Node_2": {"ansible_host": "127.0.0.1", "ip": "10.0.0.2"},
                  "node.3.": {"ansible_host": "127.0.0.1", "ip": "10.0.0.3"}},
        "children": {"kube_control_plane": {"hosts": {"cp1": None}}, "etcd": {"hosts": {"cp1": None}},
                     "kube_node": {"hosts": {"Node_2": None, "node.3.": None}}}}}))
    res = invoke("init", "-i", str(inv), "--rootfs", str(tmp_path / "out"))
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "Node_2" in line and "node.3." in line and "RFC 1123" in line
    assert not (tmp_path / "out").exists()


def test_skip_phases_are_checked_against_the_tree(tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    res = invoke("init", "-i", str(inv), "--rootfs", str(tmp_path / "o"), "--skip-phases", "loadbalancr")
    assert res.exit_code == 2 and "unknown phase 'loadbalancr'" in res.output and "loadbalancer" in res.output
    ok = invoke("init", "-i", str(inv), "--rootfs", str(tmp_path / "o"), "--pki-dir", str(tmp_path / "pki"),
                "--skip-phases", "certs/apiserver,validate", "-o", "json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["skipped_phases"] == {"certs/apiserver": "--skip-phases", "validate": "--skip-phases"}
