"""A non-root SSH user with `become` (sudo), Kubespray's usual setup, on real lab machines.

One lab of 1 control plane + 1 worker. Every machine gets a user `kbadmin` with the lab's key and
passwordless sudo, and root may no longer log in over SSH (so an accidental root login fails loudly
instead of quietly working). The inventory says `ansible_user: kbadmin` + `ansible_become: true`.
Then, with the same --pki-dir throughout:

1. `init -i` over SSH provisions the cluster: files owned by root with the promised modes, etcd healthy;
2. `init -i --transport ansible` (Ansible's own become) finds the same state: 0 changed everywhere;
3. `init -i` over SSH again: 0 changed;
4. `reset -i --transport ansible` wipes the nodes through Ansible's become, `init -i --transport
   ansible` provisions them from scratch (the same checks as in 1), and SSH then changes nothing.

From the moment root logins are refused, the test checks nodes as kbadmin through `sudo -n`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.errors import TransportError
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import NODE_PATHS, sh, sudo_sh

pytestmark = pytest.mark.lab

USER = "kbadmin"
PKI = "/etc/kubernetes/pki"
ETCDCTL = (
    f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/etcd/ca.crt "
    f"--cert={PKI}/etcd/healthcheck-client.crt --key={PKI}/etcd/healthcheck-client.key"
)
# What init writes on a node: all of it must belong to root.
ROOTS = NODE_PATHS

# Run as root over the lab's own root login, before it is switched off.
SETUP = f"""
set -eu
id -u {USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --password '*' {USER}
home=$(getent passwd {USER} | cut -d: -f6)
install -d -m 0700 -o {USER} -g {USER} "$home/.ssh"
install -m 0600 -o {USER} -g {USER} /root/.ssh/authorized_keys "$home/.ssh/authorized_keys"
# sudo ignores files in sudoers.d whose name has a dot: the temp file is inert until renamed.
printf '%s\\n' '{USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/.{USER}.tmp
chmod 0440 /etc/sudoers.d/.{USER}.tmp
visudo -cf /etc/sudoers.d/.{USER}.tmp
mv -f /etc/sudoers.d/.{USER}.tmp /etc/sudoers.d/{USER}
visudo -c >/dev/null
# sshd takes the first value it reads and includes sshd_config.d/*.conf in name order: 00- wins over
# the lab's own kbootstrap.conf (PermitRootLogin prohibit-password).
printf 'PermitRootLogin no\\n' > /etc/ssh/sshd_config.d/00-no-root-login.conf
sshd -t
sshd -T | grep -qx 'permitrootlogin no'
systemctl reload ssh
"""


def kbootstrap(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def init_json(become: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    proc = kbootstrap("init", "-i", str(become["inventory"]), "--pki-dir", str(become["pki"]), "-o", "json", *extra)
    elapsed = time.monotonic() - started
    try:
        return proc.returncode, json.loads(proc.stdout), elapsed
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") \
            from None


def root(lab: LabState, machine: str, command: str, stdin: str | None = None) -> str:
    """command as root on machine (kbadmin + sudo: root may not log in); its stdout, exit 0 asserted."""
    code, out, err = sudo_sh(lab, machine, USER, command, stdin=stdin, timeout=120)
    assert code == 0, f"{machine}: {command!r} exited {code}: {err}"
    return out


def root_login_refused(lab: LabState, machine: str) -> bool:
    """True when sshd answers but refuses root's key (not merely when the connection fails)."""
    try:
        sh(lab, machine, "true", timeout=10)
    except TransportError as e:
        return "authentication failed" in str(e).lower()
    return False


def not_root_owned(lab: LabState, machine: str) -> list[str]:
    """Paths init writes that do not belong to root:root, and anything kbadmin owns outside its home."""
    roots = " ".join(ROOTS)
    out = root(lab, machine, f"for p in {roots}; do [ -e \"$p\" ] && printf '%s\\n' \"$p\"; done "
               "| xargs -r -d '\\n' -I{} find {} \\( ! -user root -o ! -group root \\) -printf '%u:%g %p\\n'; "
               f"find / -xdev -path /home/{USER} -prune -o -user {USER} -printf '%u:%g %p\\n'")
    return out.split("\n")[:-1] if out else []


def cps(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "control-plane"]


def workers(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "worker"]


def summary(report: dict[str, Any]) -> str:
    return json.dumps({n: {"changed": h["changed"], "failed": h["failed"], "error": h["error"]}
                       for n, h in report["hosts"].items()}, indent=1)


@pytest.fixture(scope="module")
def become(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab: LabState = module_lab_factory(control_planes=1, workers=1)
    for m in lab.machines:
        code, out, err = sh(lab, m.name, "bash -s", stdin=SETUP, timeout=120)
        assert code == 0, f"{m.name}: setting up {USER} failed ({code}): {out}{err}"
    # The reload is asynchronous: wait until sshd actually refuses root, then check kbadmin's way in.
    deadline = time.monotonic() + 30
    pending = [m.name for m in lab.machines]
    while pending and time.monotonic() < deadline:
        pending = [n for n in pending if not root_login_refused(lab, n)]
        if pending:
            time.sleep(0.2)
    assert not pending, f"root can still log in over SSH on {pending}"
    for m in lab.machines:
        assert root(lab, m.name, "id -u").strip() == "0"
        code, out, _ = sudo_sh(lab, m.name, USER, f"stat -c '%U:%G %a' /etc/sudoers.d/{USER} ~{USER}/.ssh "
                               f"~{USER}/.ssh/authorized_keys")
        assert code == 0 and out.split("\n")[:-1] == ["root:root 440", f"{USER}:{USER} 700", f"{USER}:{USER} 600"], out

    inventory = Path(lab.inventory_dir) / "hosts.yaml"
    doc = yaml.safe_load(inventory.read_text())
    hosts = doc["all"]["hosts"]
    assert set(hosts) == {m.name for m in lab.machines}
    for hv in hosts.values():
        assert hv["ansible_user"] == "root"  # what lab up wrote; everything else stays as it was
        hv["ansible_user"] = USER
        hv["ansible_become"] = True
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    return {"lab": lab, "inventory": inventory, "pki": tmp_path_factory.mktemp("pki")}


def test_ssh_transport_provisions_as_root_through_sudo(become: dict[str, Any]) -> None:
    lab = become["lab"]
    code, report, seconds = init_json(become)
    assert code == 0, summary(report) + json.dumps(report.get("validation"))[:3000]
    assert set(report["hosts"]) == {m.name for m in lab.machines}
    for name, host in report["hosts"].items():
        assert host["failed"] is False and host["error"] is None, (name, host["error"])
        assert host["changed"] > 0, name
    print(f"init -i over SSH as {USER} with become: {seconds:.1f}s")
    assert_node_state(lab)


def test_become_flag_is_ansible_playbooks_b(become: dict[str, Any]) -> None:
    """The same inventory without ansible_become: `-b` (ansible-playbook's flag) is all it takes."""
    inventory: Path = become["inventory"]
    kept = inventory.read_text()
    doc = yaml.safe_load(kept)
    for hv in doc["all"]["hosts"].values():
        del hv["ansible_become"]
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        code, report, _ = init_json(become, "-b")
        assert code == 0, summary(report)
        assert sum(h["changed"] for h in report["hosts"].values()) == 0, summary(report)
    finally:
        inventory.write_text(kept)


def assert_node_state(lab: LabState) -> None:
    """What init wrote through sudo: owned by root, with the promised modes; etcd healthy."""
    cp, w = cps(lab)[0], workers(lab)[0]
    out = root(lab, cp, f"stat -c '%U:%G %a %n' {PKI}/ca.crt {PKI}/ca.key {PKI}/apiserver.key "
                        f"{PKI}/etcd/ca.key /etc/kubernetes/admin.conf /etc/containerd/config.toml")
    assert out.split("\n")[:-1] == [
        f"root:root 600 {PKI}/ca.crt",
        f"root:root 600 {PKI}/ca.key",
        f"root:root 600 {PKI}/apiserver.key",
        f"root:root 600 {PKI}/etcd/ca.key",
        "root:root 600 /etc/kubernetes/admin.conf",
        "root:root 644 /etc/containerd/config.toml",
    ], out
    out = root(lab, w, f"stat -c '%U:%G %a %n' {PKI}/ca.crt /etc/containerd/config.toml; "
                       "find /etc/kubernetes -type f | sort")
    assert out.split("\n")[:-1] == [
        f"root:root 600 {PKI}/ca.crt",
        "root:root 644 /etc/containerd/config.toml",
        # The kubelet's own kubeconfig (TLS-bootstrapped) and the CA: no CA key, nothing else.
        "/etc/kubernetes/kubelet.conf",
        f"{PKI}/ca.crt",
    ], out
    for m in lab.machines:
        loose = root(lab, m.name, "find /etc/kubernetes -type f -name '*.key' ! -perm 0600 -printf '%m %p\\n'")
        assert loose == "", (m.name, loose)
        assert not_root_owned(lab, m.name) == [], m.name
        assert root(lab, m.name, "systemctl is-active containerd").strip() == "active", m.name
    # Host-mode etcd, reached over mTLS with the certs init wrote.
    code, out, err = sudo_sh(lab, cp, USER, f"{ETCDCTL} endpoint health --cluster", timeout=60)
    assert code == 0, err
    assert (out + err).count("is healthy") == 1, out + err  # etcdctl 3.4 prints health on stderr


def test_ansible_transport_with_become_changes_nothing(become: dict[str, Any]) -> None:
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core is not installed (pip install ansible-core)")
    lab = become["lab"]
    code, report, seconds = init_json(become, "--transport", "ansible")
    assert code == 0, summary(report) + json.dumps(report.get("validation"))[:3000]
    assert report["transport"] == "ansible"
    changed = {n: h["changed"] for n, h in report["hosts"].items()}
    assert changed == dict.fromkeys((m.name for m in lab.machines), 0), summary(report)
    assert all(not h["failed"] and h["error"] is None for h in report["hosts"].values()), summary(report)
    print(f"init -i --transport ansible as {USER} with become (rerun): {seconds:.1f}s")
    for m in lab.machines:
        assert root(lab, m.name, "find /etc/kubernetes \\( ! -user root -o ! -group root \\) -printf '%u:%g %p\\n'") == "", m.name
        assert not_root_owned(lab, m.name) == [], m.name


def test_ssh_transport_rerun_changes_nothing(become: dict[str, Any]) -> None:
    lab = become["lab"]
    code, report, seconds = init_json(become)
    assert code == 0, summary(report)
    changed = {n: h["changed"] for n, h in report["hosts"].items()}
    assert changed == dict.fromkeys((m.name for m in lab.machines), 0), summary(report)
    print(f"init -i over SSH as {USER} with become (rerun): {seconds:.1f}s")
    # Root still cannot log in: every run above went through kbadmin and sudo.
    assert all(root_login_refused(lab, m.name) for m in lab.machines)


def test_ansible_transport_cold_init_with_become(become: dict[str, Any]) -> None:
    """The Ansible path's own writes through sudo: reset.yml, then cluster.yml on wiped nodes."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core is not installed (pip install ansible-core)")
    lab = become["lab"]
    proc = kbootstrap("reset", "-f", "-i", str(become["inventory"]), "--pki-dir", str(become["pki"]), "--transport",
                      "ansible", "-o", "json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # kubeadm reset's list: manifests, the PKI, the kubeconfigs (other files under /etc/kubernetes stay).
    left = root(lab, cps(lab)[0], "find /etc/kubernetes/pki /etc/kubernetes/manifests -type f; ls /etc/kubernetes/*.conf 2>/dev/null; true")
    assert left == "", left
    code, report, seconds = init_json(become, "--transport", "ansible")
    assert code == 0, summary(report) + json.dumps(report.get("validation"))[:3000]
    assert all(h["changed"] > 0 and not h["failed"] for h in report["hosts"].values()), summary(report)
    print(f"init -i --transport ansible as {USER} with become (after reset): {seconds:.1f}s")
    assert_node_state(lab)
    code, report, _ = init_json(become)
    assert code == 0, summary(report)
    assert {n: h["changed"] for n, h in report["hosts"].items()} == dict.fromkeys(report["hosts"], 0), summary(report)
