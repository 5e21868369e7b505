"""Boots a real lab (1 control plane + 2 workers) and checks it end to end."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest
import yaml
from click.testing import CliRunner, Result

from bootstrap.lab import cgroup, machine, network, plan
from bootstrap.lab.cli import lab
from bootstrap.lab.state import LabState, lab_dir
from bootstrap.lab.testing import sh, unique_name

pytestmark = [pytest.mark.lab, pytest.mark.slow]
LabFactory = Callable[..., LabState]


def cli(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(lab, list(args))
    assert result.exit_code == code, f"lab {' '.join(args)} -> {result.exit_code}: {result.output}"
    return result


@pytest.fixture(scope="module")
def three(module_lab_factory: LabFactory) -> LabState:
    return module_lab_factory(1, 2)


def names(st: LabState) -> list[str]:
    return [m.name for m in st.machines]


def connect(st: LabState, ip: str, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(ip, username="root", key_filename=str(st.key_path), allow_agent=False, look_for_keys=False,
                   timeout=10)
    return client


def test_inventory(three: LabState) -> None:
    inv = Path(three.inventory_dir)
    hosts = yaml.safe_load((inv / "hosts.yaml").read_text())["all"]
    cp, w1, w2 = names(three)
    assert cp.endswith("-cp1") and w1.endswith("-w1") and w2.endswith("-w2")
    assert set(hosts["hosts"]) == {cp, w1, w2}
    for m in three.machines:
        h = hosts["hosts"][m.name]
        assert h["ansible_host"] == h["ip"] == m.ip and h["ansible_user"] == "root"
        assert Path(h["ansible_ssh_private_key_file"]).stat().st_mode & 0o777 == 0o600
    ch = hosts["children"]
    assert set(ch["kube_control_plane"]["hosts"]) == set(ch["etcd"]["hosts"]) == {cp}
    assert set(ch["kube_node"]["hosts"]) == {w1, w2}
    assert ch["k8s_cluster"]["children"] == {"kube_control_plane": {}, "kube_node": {}}
    gv = yaml.safe_load((inv / "group_vars/all/lab.yml").read_text())
    assert gv["lab_name"] == three.name


def test_ssh_with_host_key_checking(three: LabState, tmp_path: Path) -> None:
    known = Path(three.inventory_dir) / "known_hosts"
    for m in three.machines:
        client = connect(three, m.ip, known)
        _, out, _ = client.exec_command("hostname")
        assert out.read().decode().strip() == m.name
        client.close()
    # A host key the known_hosts does not hold is refused, so checking is really on.
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException):
        connect(three, three.machines[0].ip, empty)


def test_system_running(three: LabState) -> None:
    for m in three.machines:
        _, out, _ = sh(three, m.name, "systemctl is-system-running --wait")
        _, failed, _ = sh(three, m.name, "systemctl --failed --no-legend --plain")
        assert out.strip() == "running", f"{m.name} is {out.strip()}; failed units: {failed.strip()}"


def test_unique_identity(three: LabState) -> None:
    host_keys, machine_ids, hostnames = set(), set(), set()
    for m in three.machines:
        _, out, _ = sh(three, m.name, "hostname; cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub")
        hostname, mid, key = out.strip().splitlines()
        hostnames.add(hostname)
        machine_ids.add(mid)
        host_keys.add(key.split()[1])
    assert len(hostnames) == len(machine_ids) == len(host_keys) == 3


def test_dns_and_ping(three: LabState) -> None:
    for m in three.machines:
        _, hosts, _ = sh(three, m.name, "cat /etc/hosts")
        for other in three.machines:
            if other is m:
                continue
            assert other.name not in hosts, "other machines must come from the lab DNS, not /etc/hosts"
            rc, out, err = sh(three, m.name, f"getent hosts {other.name} && getent hosts {other.name}.{three.domain}")
            assert rc == 0 and other.ip in out, f"{m.name} resolving {other.name}: {out}{err}"
            rc, out, _ = sh(three, m.name, f"ping -c1 -W2 {other.name}")
            assert rc == 0, f"{m.name} pinging {other.name}: {out}"


def test_dns_remove_and_add(three: LabState) -> None:
    cp, w1 = three.machines[0].name, three.machines[1].name
    cli("dns", "remove", three.name, w1)
    try:
        rc, out, _ = sh(three, cp, f"getent hosts {w1}")
        assert rc != 0, f"{w1} still resolves after dns remove: {out}"
    finally:
        cli("dns", "add", three.name, w1)
    rc, out, _ = sh(three, cp, f"getent hosts {w1}")
    assert rc == 0 and three.machines[1].ip in out


def _http(st: LabState, src: str, dst: str, port: int) -> bool:
    rc, _, _ = sh(st, src, f"curl -s -o /dev/null -m 3 http://{dst}:{port}/")
    return rc == 0


def test_block_port_peer_and_heal(three: LabState) -> None:
    cp, w1, w2 = names(three)
    for port in (8080, 8081):
        rc, out, err = sh(three, w1, f"systemd-run --unit=http{port} --working-directory=/tmp "
                                     f"python3 -m http.server {port}")
        assert rc == 0, out + err
    sh(three, w1, "for i in $(seq 50); do ss -ltn | grep -q :8081 && ss -ltn | grep -q :8080 && exit 0; "
                  "sleep 0.1; done; exit 1")
    assert _http(three, cp, w1, 8080) and _http(three, cp, w1, 8081)
    try:
        cli("block", three.name, w1, "--port", "8080")
        assert not _http(three, cp, w1, 8080), "port 8080 still reachable after block"
        assert _http(three, cp, w1, 8081), "block --port 8080 also cut port 8081"
        cli("heal", three.name, w1)
        assert _http(three, cp, w1, 8080) and _http(three, cp, w1, 8081)

        cli("block", three.name, w1, "--peer", w2)
        assert sh(three, w2, f"ping -c1 -W1 {w1}")[0] != 0, "w2 reaches w1 despite --peer block"
        assert sh(three, cp, f"ping -c1 -W1 {w1}")[0] == 0, "--peer w2 also cut off the control plane"
        cli("heal", three.name, w1)

        cli("block", three.name, w2)
        assert sh(three, cp, f"ping -c1 -W1 {w2}")[0] != 0
        assert not machine.ssh_banner(three.machines[2].ip), "host still reaches a fully blocked machine"
    finally:
        cli("heal", three.name, w1)
        cli("heal", three.name, w2)
    assert sh(three, cp, f"ping -c1 -W2 {w2}")[0] == 0


def test_stop_start_keeps_host_key(three: LabState) -> None:
    w2 = three.machines[2]
    cli("stop", three.name, w2.name)
    status = json.loads(cli("status", "--name", three.name, "-o", "json").output)
    assert {m["name"]: m["state"] for m in status["machines"]}[w2.name] == "stopped"
    with pytest.raises(OSError):
        socket.create_connection((w2.ip, 22), timeout=2).close()
    cli("start", three.name, w2.name)
    # Same known_hosts, RejectPolicy: the host key survived the power cycle.
    connect(three, w2.ip, three.known_hosts_path).close()
    rc, out, _ = sh(three, three.machines[0].name, f"ping -c1 -W2 {w2.name}")
    assert rc == 0, out


def test_ssh_command_exit_code_and_stdin(three: LabState) -> None:
    assert cli("ssh", three.name, "cp1", "exit", "7", code=7)
    result = CliRunner().invoke(lab, ["ssh", three.name, "cp1", "hostname"])
    assert result.exit_code == 0 and three.machines[0].name in result.output


def test_up_again_is_noop(three: LabState) -> None:
    out = cli("up", "--name", three.name, "-c", "1", "-w", "2", "--inventory-dir",
              str(Path(three.inventory_dir).parent)).output
    assert "already up" in out


def test_status_and_list(three: LabState) -> None:
    s = json.loads(cli("status", "--name", three.name, "-o", "json").output)
    assert [m["role"] for m in s["machines"]] == ["control-plane", "worker", "worker"]
    assert all(m["state"] == "running" for m in s["machines"])
    assert three.name in cli("list").output


def test_down_leaves_nothing(lab_host: None, tmp_path: Path) -> None:
    name = unique_name()
    try:
        cli("up", "--name", name, "-c", "1", "-w", "1", "--inventory-dir", str(tmp_path))
        assert (tmp_path / name / "hosts.yaml").is_file()
    finally:
        cli("down", "--name", name)
    assert not [ns for ns in network.list_netns() if plan.netns_pattern(name).match(ns)]
    assert not network.link_exists(plan.bridge_name(name))
    assert not network.list_links(plan.veth_prefix(name))
    assert str(lab_dir(name)) not in Path("/proc/self/mountinfo").read_text()
    assert not machine.find_nspawn(re.compile(rf"^{name}-")), "nspawn processes left behind"
    assert not [p for p in Path("/proc").glob("[0-9]*") if _is_lab_dnsmasq(p, name)], "dnsmasq left behind"
    assert not lab_dir(name).exists()
    assert not any(c.exists() for c in cgroup.lab_cgroups(name))
    assert not (tmp_path / name).exists(), "inventory left behind"
    assert "nothing to do" in cli("down", "--name", name).output


def _is_lab_dnsmasq(proc: Path, name: str) -> bool:
    try:
        return str(lab_dir(name)) in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def test_down_missing_lab_exits_zero(lab_host: None) -> None:
    assert "nothing to do" in cli("down", "--name", unique_name("nx")).output
