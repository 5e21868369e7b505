"""The Vagrantfile, checked as far as a machine without a hypervisor allows (no VM boots here).

With Debian's vagrant (2.3) and vagrant-libvirt (0.11):
- `ruby -c`; `vagrant validate` with the libvirt provider (vagrant-libvirt's own checks), with
  VirtualBox (VBoxManage stubbed to answer `--version` only, so Vagrant's VirtualBox checks run) and
  with the provider blocks ignored (-p); each shown to catch a misspelt option; `vagrant status`.
- Vagrant's ansible provisioner itself, up to the ansible-playbook it would start: `vagrant kb-plan
  MACHINE`, a test-only command defined in the Vagrant home's Vagrantfile (HELPER below), calls the
  provisioner's `provision` with the three things that need a booted VM replaced: each machine's
  ssh_info (made-up addresses), the list of created machines, and the final exec (recorded instead).
  The file checks, the generated inventory, the command line and its environment are Vagrant's own.
- That command then runs with --syntax-check and --list-hosts; the Ansible settings and SSH host
  key options it would use are read back under Vagrant's environment; kbootstrap's loader reads the
  inventory the Vagrantfile hands to kbootstrap_phase.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap.spec.inventory import load_inventory
from bootstrap.workflow.fleet_spec import fleet_cluster_spec

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = ROOT / "Vagrantfile"

pytestmark = pytest.mark.skipif(
    shutil.which("vagrant") is None, reason="vagrant not installed (apt-get install vagrant vagrant-libvirt)"
)

# Loaded by Vagrant as the home Vagrantfile (before the project's), so the command is registered.
HELPER = r"""
require "json"

class KbPlanCommand < Vagrant.plugin("2", :command)
  def self.synopsis
    "records the ansible-playbook run a provision would start (kbootstrap tests)"
  end

  def execute
    captured = nil
    with_target_vms(@argv, single_target: true) do |machine|
      prov = machine.config.vm.provisioners.find { |p| p.type == :ansible }
      raise "#{machine.name} has no ansible provisioner" unless prov
      provider = machine.provider_name
      machines = @env.machine_names.map { |name| @env.machine(name, provider) }
      machines.each_with_index do |m, i|
        info = { host: "198.51.100.#{10 + i}", port: 22, username: "vagrant", keys_only: true,
                 forward_agent: false, private_key_path: ["/nonexistent/#{m.name}/private_key"] }
        m.define_singleton_method(:ssh_info) { info }
      end
      @env.define_singleton_method(:active_machines) { machines.map { |m| [m.name, provider] } }
      runner = VagrantPlugins::Ansible::Provisioner::Host.new(machine, prov.config)
      runner.define_singleton_method(:execute_command_from_host) { |command| captured = command }
      runner.provision
    end
    raise "the provisioner started nothing" unless captured
    opts = captured.pop
    File.write(ENV.fetch("KB_PLAN_OUT"),
               JSON.dump({ "command" => captured, "env" => opts[:env], "workdir" => opts[:workdir] }))
    0
  end
end

class KbPlanPlugin < Vagrant.plugin("2")
  name "kbootstrap test helper"
  command("kb-plan") { KbPlanCommand }
end
"""

# Vagrant 2.3's VirtualBox provider is usable once `VBoxManage --version` names a version it supports;
# anything else fails loudly, so nothing can pretend a VM exists.
FAKE_VBOXMANAGE = """#!/bin/sh
[ "$1" = "--version" ] && { echo 7.0.6r155176; exit 0; }
echo "fake VBoxManage: $*" >&2
exit 1
"""


@dataclass(frozen=True)
class Vagrant:
    home: Path
    fakebin: Path
    work: Path

    def run(
        self, *args: str, provider: str = "libvirt", dotfile: Path | None = None, cwd: Path = ROOT, **env: str
    ) -> subprocess.CompletedProcess[str]:
        # Only what the test sets: nothing from the caller's Vagrant, KB_* or Ansible settings.
        base = {k: v for k, v in os.environ.items() if not k.startswith(("VAGRANT_", "KB_", "KBOOTSTRAP_", "ANSIBLE_"))}
        base.update(
            VAGRANT_CWD=str(cwd),
            VAGRANT_HOME=str(self.home),
            VAGRANT_DOTFILE_PATH=str(dotfile or self.work / "dotfile"),
            VAGRANT_CHECKPOINT_DISABLE="1",
        )
        if provider:
            base["VAGRANT_DEFAULT_PROVIDER"] = provider
        if provider == "virtualbox":
            base["PATH"] = f"{self.fakebin}{os.pathsep}{base['PATH']}"
        return subprocess.run(
            ["vagrant", *args], cwd=self.work, env={**base, **env}, capture_output=True, text=True, timeout=120
        )


@pytest.fixture(scope="module")
def vagrant(tmp_path_factory: pytest.TempPathFactory) -> Vagrant:
    work = tmp_path_factory.mktemp("vagrant")
    (work / "home").mkdir()
    (work / "home" / "Vagrantfile").write_text(HELPER)
    (work / "bin").mkdir()
    (work / "bin" / "VBoxManage").write_text(FAKE_VBOXMANAGE)
    (work / "bin" / "VBoxManage").chmod(0o755)
    return Vagrant(work / "home", work / "bin", work)


@pytest.fixture(scope="module")
def libvirt(vagrant: Vagrant) -> None:
    proc = vagrant.run("plugin", "list", provider="")
    if "vagrant-libvirt" not in proc.stdout:
        pytest.skip("vagrant-libvirt not installed (apt-get install vagrant-libvirt)")


def _ansible(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which(args[0]) is None:
        pytest.skip(f"{args[0]} not installed (pip install -e '.[test]')")
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return subprocess.run(args, cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=120)


def _plugin_settings(dump: Any, plugin: str) -> dict[str, Any]:
    """One plugin's settings in `ansible-config dump --format json -t all` ({plugin: [{name, value}...]})."""
    if isinstance(dump, dict) and isinstance(dump.get(plugin), list):
        return {d["name"]: d["value"] for d in dump[plugin] if isinstance(d, dict) and "name" in d}
    items = dump.values() if isinstance(dump, dict) else dump if isinstance(dump, list) else []
    for item in items:
        if found := _plugin_settings(item, plugin):
            return found
    return {}


def _ssh_options(args: str) -> dict[str, str]:
    """-o Key=Value options in effect: for ssh the first value of an option wins."""
    tokens, out = shlex.split(args), {}
    for i, tok in enumerate(tokens):
        opt = tokens[i + 1] if tok == "-o" and i + 1 < len(tokens) else tok[2:] if tok.startswith("-o") else ""
        key, _, value = opt.partition("=")
        if key:
            out.setdefault(key.lower(), value)
    return out


# ---- what Vagrant itself checks ------------------------------------------------------------------
def test_ruby_syntax() -> None:
    if shutil.which("ruby") is None:
        pytest.skip("ruby not installed (apt-get install ruby; vagrant brings it)")
    proc = subprocess.run(["ruby", "-c", str(VAGRANTFILE)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Syntax OK" in proc.stdout, proc.stderr


# "": `vagrant validate --ignore-provider`, which skips the provider blocks and needs no provider.
PROVIDERS = ["libvirt", "virtualbox", pytest.param("", id="ignore-provider")]


def _validate(
    vagrant: Vagrant, request: pytest.FixtureRequest, provider: str, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    if provider == "libvirt":
        request.getfixturevalue("libvirt")
    return vagrant.run("validate", *([] if provider else ["--ignore-provider"]), provider=provider, **kwargs)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_validate(vagrant: Vagrant, request: pytest.FixtureRequest, provider: str) -> None:
    proc = _validate(vagrant, request, provider)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


@pytest.mark.parametrize(
    ("good", "bad", "provider"),
    [
        ("lv.memory = MEMORY", "lv.memroy = MEMORY", "libvirt"),
        ("vb.linked_clone = true", "vb.linked_klone = true", "virtualbox"),
        ('ansible.limit = "all"', 'ansible.limmit = "all"', ""),
    ],
)
def test_validate_catches_a_misspelt_option(
    vagrant: Vagrant, request: pytest.FixtureRequest, tmp_path: Path, good: str, bad: str, provider: str
) -> None:
    """The passes above mean something: each block is really checked, in a copy with one typo."""
    text = VAGRANTFILE.read_text()
    assert good in text
    (tmp_path / "Vagrantfile").write_text(text.replace(good, bad))
    (tmp_path / "playbooks").symlink_to(ROOT / "playbooks")
    proc = _validate(vagrant, request, provider, cwd=tmp_path, dotfile=tmp_path / "dotfile")
    assert proc.returncode != 0
    option = bad.split(".", 1)[1].split()[0]  # lv.memroy = MEMORY -> memroy
    assert f"The following settings shouldn't exist: {option}" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({}, ["kb-cp1", "kb-w1", "kb-w2"]),
        ({"KB_CONTROL_PLANES": "3", "KB_WORKERS": "1"}, ["kb-cp1", "kb-cp2", "kb-cp3", "kb-w1"]),
    ],
)
def test_status_lists_the_machines(vagrant: Vagrant, libvirt: None, settings: dict[str, str], names: list[str]) -> None:
    proc = vagrant.run("status", "--machine-readable", **settings)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split(",", 3) for line in proc.stdout.splitlines() if line.count(",") >= 3]
    assert [r[1] for r in rows if r[2] == "provider-name"] == names
    assert {r[3] for r in rows if r[2] == "provider-name"} == {"libvirt"}
    assert {r[3] for r in rows if r[2] == "state"} == {"not_created"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"KB_CONTROL_PLANES": "0"}, "KB_CONTROL_PLANES must be at least 1"),
        ({"KB_WORKERS": "two"}, "invalid value for Integer"),
        ({"KBOOTSTRAP_BUNDLE": "/nonexistent/bundle"}, "KBOOTSTRAP_BUNDLE=/nonexistent/bundle is not a directory"),
    ],
)
def test_bad_settings_are_refused(vagrant: Vagrant, settings: dict[str, str], message: str) -> None:
    proc = vagrant.run("validate", "--ignore-provider", provider="", **settings)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


# ---- what Vagrant's ansible provisioner would run ------------------------------------------------
@dataclass(frozen=True)
class Plan:
    command: list[str]
    env: dict[str, str]
    workdir: Path
    dotfile: Path
    control_planes: list[str]
    workers: list[str]
    ips: dict[str, str]
    bundle: Path | None

    def option(self, name: str) -> str:
        return next(a.split("=", 1)[1] for a in self.command if a.startswith(f"--{name}="))

    @property
    def extra_vars(self) -> dict[str, Any]:
        return json.loads(self.option("extra-vars"))

    @property
    def inventory(self) -> Path:
        return Path(self.option("inventory-file"))


PLANS = {
    "defaults": {},
    "three-control-planes-no-workers": {"KB_CONTROL_PLANES": "3", "KB_WORKERS": "0", "KB_SUBNET": "10.11.12"},
}


@pytest.fixture(scope="module", params=sorted(PLANS))
def plan(request: pytest.FixtureRequest, vagrant: Vagrant, libvirt: None) -> Plan:
    settings = dict(PLANS[request.param])
    work = vagrant.work / request.param
    work.mkdir()
    bundle = None
    if request.param != "defaults":
        bundle = work / "bundle"
        bundle.mkdir()
        settings["KBOOTSTRAP_BUNDLE"] = str(bundle)
    cps = [f"kb-cp{i}" for i in range(1, int(settings.get("KB_CONTROL_PLANES", "1")) + 1)]
    workers = [f"kb-w{i}" for i in range(1, int(settings.get("KB_WORKERS", "2")) + 1)]
    subnet = settings.get("KB_SUBNET", "192.168.56")
    ips = {name: f"{subnet}.{11 + i}" for i, name in enumerate(cps + workers)}
    out = work / "plan.json"
    # The last machine provisions all of them.
    proc = vagrant.run("kb-plan", (cps + workers)[-1], dotfile=work / "dotfile", KB_PLAN_OUT=str(out), **settings)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    return Plan(
        command=data["command"],
        env={k: str(v) for k, v in data["env"].items()},
        workdir=Path(data["workdir"]),
        dotfile=work / "dotfile",
        control_planes=cps,
        workers=workers,
        ips=ips,
        bundle=bundle,
    )


def test_only_the_last_machine_provisions(vagrant: Vagrant, libvirt: None, tmp_path: Path) -> None:
    proc = vagrant.run("kb-plan", "kb-w1", dotfile=tmp_path / "dotfile", KB_PLAN_OUT=str(tmp_path / "plan.json"))
    assert proc.returncode != 0
    assert "kb-w1 has no ansible provisioner" in proc.stdout + proc.stderr


def test_provisioner_command(plan: Plan) -> None:
    assert plan.command[0] == "ansible-playbook"
    assert plan.command[-1] == "playbooks/cluster.yml"
    assert plan.workdir == ROOT
    assert "--limit=all" in plan.command
    assert "--become" in plan.command
    assert plan.inventory.parent == plan.dotfile / "provisioners" / "ansible"
    extra = plan.extra_vars
    assert "kbootstrap_inventory" not in extra  # the plugin reads Vagrant's own inventory (inventory_file)
    assert extra["kbootstrap_known_hosts"] == str(plan.dotfile / "kbootstrap" / "known_hosts")
    assert extra["kbootstrap_ssh_strict"] == "accept-new"
    assert extra["kbootstrap_pki_dir"] == str(ROOT / "pki" / "vagrant")
    assert extra.get("kbootstrap_bundle") == (str(plan.bundle) if plan.bundle else None)


def test_generated_inventory_has_kubespray_groups(plan: Plan) -> None:
    proc = _ansible("ansible-inventory", "-i", str(plan.inventory), "--list", env=plan.env, cwd=plan.workdir)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    assert inv["kube_control_plane"]["hosts"] == plan.control_planes
    assert inv["etcd"]["hosts"] == plan.control_planes
    # Without workers the control planes run the workloads.
    assert inv["kube_node"]["hosts"] == (plan.workers or plan.control_planes)
    assert sorted(inv["k8s_cluster"]["children"]) == ["kube_control_plane", "kube_node"]
    assert {h: v["ip"] for h, v in inv["_meta"]["hostvars"].items()} == plan.ips


def test_playbook_parses_and_reaches_every_machine(plan: Plan) -> None:
    # Exactly what Vagrant would run, with --syntax-check / --list-hosts before the playbook.
    for flag in ("--syntax-check", "--list-hosts"):
        proc = _ansible(*plan.command[:-1], flag, plan.command[-1], env=plan.env, cwd=plan.workdir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = re.search(r"hosts \((\d+)\):", proc.stdout)
    assert listed, proc.stdout
    assert sorted(proc.stdout[listed.end() :].split()[: int(listed[1])]) == sorted(plan.ips)


def test_ansible_settings_are_the_projects(plan: Plan) -> None:
    """ansible.cfg is the one in effect, and its ssh_args survive Vagrant's ANSIBLE_SSH_ARGS."""
    proc = _ansible(
        "ansible-config", "dump", "--only-changed", "--format", "json", "-t", "all", env=plan.env, cwd=plan.workdir
    )
    assert proc.returncode == 0, proc.stderr
    dump = json.loads(proc.stdout)
    top = {d["name"]: d["value"] for d in dump if isinstance(d, dict) and "name" in d}
    assert Path(top["CONFIG_FILE"]) == ROOT / "playbooks" / "ansible.cfg"
    assert top["DEFAULT_FORKS"] == 50
    assert top["HOST_KEY_CHECKING"] is True
    assert _plugin_settings(dump, "ssh")["pipelining"] is True

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "playbooks" / "ansible.cfg")
    effective = _ssh_options(plan.env["ANSIBLE_SSH_ARGS"])
    for key, value in _ssh_options(cfg["ssh_connection"]["ssh_args"]).items():
        assert effective.get(key) == value, (key, plan.env["ANSIBLE_SSH_ARGS"])
    # Nothing in Vagrant's arguments turns host key checking off.
    assert "userknownhostsfile" not in effective
    assert "stricthostkeychecking" not in effective
    assert plan.env["ANSIBLE_HOST_KEY_CHECKING"] == "true"


def test_host_keys_are_checked_against_the_vagrant_known_hosts(plan: Plan) -> None:
    """playbooks/group_vars/all/kbootstrap.yml, as the playbook run would render it for each host."""
    # --playbook-dir: the playbook's group_vars, as for the run; debug never connects.
    adhoc = ["-i", str(plan.inventory), "--playbook-dir", str(ROOT / "playbooks"), "-e", plan.option("extra-vars")]
    debug = ["-m", "ansible.builtin.debug", "-a", "var=ansible_ssh_common_args"]
    proc = _ansible("ansible", "all", *adhoc, *debug, env=plan.env, cwd=plan.workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rendered = {
        m[1]: json.loads(m[2])["ansible_ssh_common_args"]
        for m in re.finditer(r"^(\S+) \| SUCCESS => (\{.*?^\})", proc.stdout, re.M | re.S)
    }
    assert sorted(rendered) == sorted(plan.ips)
    known_hosts = plan.extra_vars["kbootstrap_known_hosts"]
    for args in rendered.values():
        assert f'-o UserKnownHostsFile="{known_hosts} ~/.ssh/known_hosts"' in args
        assert "-o StrictHostKeyChecking=accept-new" in args


def test_kbootstrap_reads_vagrants_generated_inventory(plan: Plan) -> None:
    inv = load_inventory(str(plan.inventory / "vagrant_ansible_inventory"))
    assert [h.name for h in inv.hosts] == plan.control_planes + plan.workers
    for h in inv.hosts:
        assert h.ip == plan.ips[h.name]
        assert h.is_control_plane == h.is_etcd == (h.name in plan.control_planes)
        assert h.is_worker == (h.name in (plan.workers or plan.control_planes))
    # The same cluster `kbootstrap init -i` would build from it.
    assert fleet_cluster_spec({}, inv).advertise_address == plan.ips[plan.control_planes[0]]
