"""The built wheel carries its templates and playbooks, and both work outside the repository.

One wheel and one venv (--system-site-packages, for the dependencies and ansible-core) per module.
Ansible runs with the venv's interpreter (`python -m ansible playbook`), so it sees the installed
kbootstrap first. ansible-core resolves every task's action while parsing, so `--syntax-check` fails
on a role whose `kbootstrap_phase` plugin it cannot find (test_syntax_check_needs_the_action_plugin
shows that), which makes it the check that the shipped roles are usable.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
PLUGIN = "action_plugins/kbootstrap_phase.py"
ROLES = sorted(p.name for p in (PLAYBOOKS / "roles").iterdir() if (p / "tasks").is_dir())

# A small Kubespray inventory: the playbooks' `hosts:` patterns match its groups.
HOSTS_YAML = """\
all:
  hosts:
    cp1: {ip: 192.0.2.11}
    w1: {ip: 192.0.2.12}
  children:
    kube_control_plane: {hosts: {cp1: {}}}
    etcd: {hosts: {cp1: {}}}
    kube_node: {hosts: {w1: {}}}
    k8s_cluster: {children: {kube_control_plane: {}, kube_node: {}}}
"""


def _checkout_playbook_files() -> set[str]:
    """playbooks/ as Ansible sees it: symlinked directories followed, caches left out."""
    out = set()
    for root, dirs, files in os.walk(PLAYBOOKS, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out |= {(Path(root) / f).relative_to(PLAYBOOKS).as_posix() for f in files if not f.endswith(".pyc")}
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)], check=True)
    return next(dist.glob("kbootstrap-*.whl"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True)
    return venv


@pytest.fixture(scope="module")
def installed_playbooks(tmp_path_factory: pytest.TempPathFactory, venv: Path) -> Path:
    """What playbooks_dir() answers in the venv, asked from a directory outside the checkout."""
    return Path(
        subprocess.run(
            [
                str(venv / "bin/python"),
                "-c",
                "from bootstrap.ansible.playbook import playbooks_dir; print(playbooks_dir())",
            ],
            cwd=tmp_path_factory.mktemp("elsewhere"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A directory outside the checkout, with an inventory."""
    (tmp_path / "hosts.yaml").write_text(HOSTS_YAML)
    return tmp_path


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def _syntax_check(venv: Path, cwd: Path, playbook: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook --syntax-check with the venv's interpreter, against cwd/hosts.yaml."""
    try:
        import ansible  # noqa: F401
    except ImportError:
        pytest.skip("ansible-core not installed (pip install -e '.[test]')")
    # Only what the test sets: no ANSIBLE_* from the caller's environment.
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return subprocess.run(
        [str(venv / "bin/python"), "-m", "ansible", "playbook", "--syntax-check", "-i", "hosts.yaml", str(playbook)],
        cwd=cwd,
        env={**base, "ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible-tmp"), **env},
        capture_output=True,
        text=True,
    )


def test_wheel_carries_templates_and_playbooks(wheel: Path) -> None:
    names = _names(wheel)
    assert [n for n, c in collections.Counter(names).items() if c > 1] == []
    assert "bootstrap/_templates/kubelet/kubelet.service" in names
    assert "bootstrap/_templates/containerd/config-v2.toml.j2" in names
    shipped = {n.removeprefix("bootstrap/_playbooks/") for n in names if n.startswith("bootstrap/_playbooks/")}
    for path in ("cluster.yml", "scale.yml", "reset.yml", "ansible.cfg", PLUGIN, "group_vars/all/kbootstrap.yml"):
        assert path in shipped
    assert ROLES, "no roles found in playbooks/roles"
    for role in ROLES:
        assert f"roles/{role}/tasks/main.yml" in shipped
        # The role's own copy of the plugin (a symlink in the checkout): a role used from a playbook
        # outside _playbooks/ finds it only there. pyproject.toml lists one per role.
        assert f"roles/{role}/{PLUGIN}" in shipped, f"{role}: add its action plugin to pyproject.toml"
    assert _checkout_playbook_files() - shipped == set()


def test_role_plugins_are_the_plugin(installed_playbooks: Path) -> None:
    plugin = (PLAYBOOKS / PLUGIN).read_bytes()
    for role in ROLES:
        assert (installed_playbooks / "roles" / role / PLUGIN).read_bytes() == plugin


def test_wheel_installs_and_renders_outside_the_repo(venv: Path, tmp_path: Path) -> None:
    init = ["init", "--rootfs", "out", "--apiserver-advertise-address", "192.0.2.1", "--node-name", "cp1", "-o", "json"]
    proc = subprocess.run([str(venv / "bin/kbootstrap"), *init], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/usr/lib/systemd/system/kubelet.service").is_file()
    # It ran the installed copy, not this checkout.
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import bootstrap; print(bootstrap.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where


def test_playbooks_dir_is_the_installed_copy(venv: Path, installed_playbooks: Path) -> None:
    assert installed_playbooks.is_relative_to(venv), installed_playbooks
    assert installed_playbooks.name == "_playbooks"
    assert (installed_playbooks / "cluster.yml").is_file()


@pytest.mark.parametrize("playbook", ["cluster.yml", "scale.yml", "reset.yml"])
def test_installed_playbooks_pass_syntax_check(
    venv: Path, installed_playbooks: Path, elsewhere: Path, playbook: str
) -> None:
    config = installed_playbooks / "ansible.cfg"
    proc = _syntax_check(venv, elsewhere, installed_playbooks / playbook, ANSIBLE_CONFIG=str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installed_roles_work_from_another_playbook(venv: Path, installed_playbooks: Path, elsewhere: Path) -> None:
    # No action_plugins next to this playbook: each role has to bring its own.
    roles = "\n".join(f"    - role: {r}" for r in ROLES)
    (elsewhere / "site.yml").write_text(
        f"- name: The installed roles\n  hosts: kube_control_plane:etcd:kube_node\n  gather_facts: false\n"
        f"  roles:\n{roles}\n"
    )
    proc = _syntax_check(venv, elsewhere, "site.yml", ANSIBLE_ROLES_PATH=str(installed_playbooks / "roles"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_syntax_check_needs_the_action_plugin(venv: Path, installed_playbooks: Path, elsewhere: Path) -> None:
    """Without the plugin the syntax check fails: the checks above are not vacuous."""
    broken = elsewhere / "broken"
    shutil.copytree(installed_playbooks, broken)
    shutil.rmtree(broken / "action_plugins")
    for role in ROLES:
        shutil.rmtree(broken / "roles" / role / "action_plugins", ignore_errors=True)
    proc = _syntax_check(venv, elsewhere, broken / "cluster.yml", ANSIBLE_CONFIG=str(broken / "ansible.cfg"))
    assert proc.returncode != 0
    assert "kbootstrap_phase" in proc.stdout + proc.stderr


def test_wheel_built_from_the_sdist_is_the_same(venv: Path, wheel: Path, tmp_path: Path) -> None:
    # `python -m build` makes the wheel from the sdist, where the roles' symlinks are copies.
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "hatchling>=1.18"], check=True)
    name = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "import sys; from hatchling.build import build_sdist; print(build_sdist(sys.argv[1]))",
            str(tmp_path / "sdist"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sdist = tmp_path / "sdist" / name
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    for role in ROLES:
        assert any(m.endswith(f"/playbooks/roles/{role}/{PLUGIN}") for m in members), role
    subprocess.run(
        [str(venv / "bin/pip"), "wheel", "-q", "--no-deps", "-w", str(tmp_path / "from-sdist"), str(sdist)], check=True
    )
    again = next((tmp_path / "from-sdist").glob("kbootstrap-*.whl"))
    assert sorted(_names(again)) == sorted(_names(wheel))
