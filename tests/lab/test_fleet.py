"""`kbootstrap init -i` on real lab machines: 3 control planes + 1 worker, etcd in host mode.

Everything goes through the real parts: the CLI in a subprocess, paramiko SSH with host keys
checked, Debian packages from the offline bundle, systemd, containerd and a 3-member etcd.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.lab import ops
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh
from bootstrap.render.node import sandbox_image
from bootstrap.spec.inventory import load_inventory
from bootstrap.workflow.fleet_spec import fleet_cluster_spec

pytestmark = pytest.mark.lab

PKI = "/etc/kubernetes/pki"
ETCDCTL = (
    f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/etcd/ca.crt "
    f"--cert={PKI}/etcd/healthcheck-client.crt --key={PKI}/etcd/healthcheck-client.key"
)


def kbootstrap(*args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "bootstrap.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    if check and proc.returncode != 0:
        raise AssertionError(f"kbootstrap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def failing_checks(report: dict[str, Any]) -> list[str]:
    """The validation failures of an init report, for assertion messages."""
    text = json.dumps(report.get("validation") or {})
    return [m for m in re.findall(r'\{[^{}]*"status": "(?:fail|error)"[^{}]*\}', text)][:10]


def init_json(inventory: Path, pki_dir: Path, *extra: str, timeout: float = 300) -> tuple[int, dict[str, Any]]:
    proc = kbootstrap("init", "-i", str(inventory), "--pki-dir", str(pki_dir), "-o", "json", *extra, timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None


@pytest.fixture(scope="module")
def cluster(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab: LabState = module_lab_factory(control_planes=3, workers=1)
    inventory = Path(lab.inventory_dir) / "hosts.yaml"
    pki_dir = tmp_path_factory.mktemp("pki")
    started = time.monotonic()
    code, report = init_json(inventory, pki_dir)
    return {"lab": lab, "inventory": inventory, "pki": pki_dir, "code": code, "report": report,
            "seconds": time.monotonic() - started}


def cps(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "control-plane"]


def workers(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "worker"]


def test_first_run_provisions_every_host(cluster: dict[str, Any]) -> None:
    report = cluster["report"]
    assert cluster["code"] == 0, json.dumps(report, indent=1)[:3000]
    assert set(report["hosts"]) == {m.name for m in cluster["lab"].machines}
    for name, host in report["hosts"].items():
        assert host["failed"] is False and host["error"] is None, name
        assert host["changed"] > 0
    # With the components built, lab inventories skip nothing: the whole cluster is built.
    lab_vars = yaml.safe_load((Path(cluster["lab"].inventory_dir) / "group_vars/all/lab.yml").read_text())
    assert "kbootstrap_skip_phases" not in lab_vars and report["skipped_phases"] == {}


def test_etcd_has_three_healthy_members_over_mtls(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    for cp in cps(lab):
        code, out, err = sh(lab, cp, f"{ETCDCTL} endpoint health --cluster")
        assert code == 0, err
        both = out + err  # etcdctl 3.4 prints health on stderr
        assert both.count("is healthy") == 3, both
    code, out, _ = sh(lab, cps(lab)[0], f"{ETCDCTL} member list")
    assert sorted(line.split(", ")[2] for line in out.strip().splitlines()) == sorted(cps(lab))
    # Peer traffic is mTLS: members advertise https peer URLs.
    assert all(", https://" in line for line in out.strip().splitlines())


def test_containerd_runs_with_systemd_cgroups_everywhere(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    for m in lab.machines:
        code, out, _ = sh(lab, m.name, "systemctl is-active containerd; grep -c 'SystemdCgroup = true' "
                          "/etc/containerd/config.toml; grep -E 'sandbox(_image)? = ' /etc/containerd/config.toml; "
                          "cat /proc/sys/net/ipv4/ip_forward; test -S /run/containerd/containerd.sock && echo sock")
        assert code == 0
        lines = out.split()
        assert lines[0] == "active" and lines[1] == "1" and "sock" in lines
        assert f'"{sandbox_image(fleet_cluster_spec({}, load_inventory(str(cluster["inventory"]))))}"' in out
        assert out.strip().splitlines()[3] == "1"


def test_key_modes_and_no_ca_key_on_workers(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    for cp in cps(lab):
        code, out, _ = sh(lab, cp, f"find {PKI} /etc/kubernetes -maxdepth 2 -type f "
                          "\\( -name '*.key' -o -name '*.conf' -o -name '*.yaml' \\) -printf '%m %p\\n'")
        assert code == 0 and out
        loose = [ln for ln in out.splitlines() if not ln.startswith("600 ")]
        assert not loose, loose
    for w in workers(lab):
        code, out, _ = sh(lab, w, "find /etc/kubernetes -type f | sort")
        # The kubelet's own kubelet.conf after its TLS bootstrap; the bootstrap credential is gone.
        assert sorted(out.split()) == sorted([f"{PKI}/ca.crt", "/etc/kubernetes/kubelet.conf"])


def test_second_run_changes_nothing_and_is_fast(cluster: dict[str, Any]) -> None:
    started = time.monotonic()
    code, report = init_json(cluster["inventory"], cluster["pki"])
    elapsed = time.monotonic() - started
    assert code == 0
    changed = {n: h["changed"] for n, h in report["hosts"].items()}
    assert set(changed.values()) == {0}, changed
    proc = kbootstrap("init", "-i", str(cluster["inventory"]), "--pki-dir", str(cluster["pki"]))
    assert "nothing to do" in proc.stdout
    print(f"first run {cluster['seconds']:.1f}s, rerun {elapsed:.1f}s")


def test_lost_local_pki_is_read_back_from_the_first_control_plane(cluster: dict[str, Any], tmp_path: Path) -> None:
    """The control machine's CA copy is not the source of truth once the cluster exists."""
    fresh = tmp_path / "new-control-machine"
    code, report = init_json(cluster["inventory"], fresh)
    assert code == 0
    assert {h["changed"] for h in report["hosts"].values()} == {0}
    cp1 = cps(cluster["lab"])[0]
    _, remote_ca, _ = sh(cluster["lab"], cp1, f"cat {PKI}/ca.crt")
    assert (fresh / "etc/kubernetes/pki/ca.crt").read_text() == remote_ca
    # A different CA on the control machine is refused, never pushed over the cluster's.
    other = tmp_path / "other"
    (other / "etc/kubernetes/pki").mkdir(parents=True)
    (other / "etc/kubernetes/pki/ca.crt").write_text((Path(__file__).parent.parent / "golden").as_posix())
    proc = kbootstrap("init", "-i", str(cluster["inventory"]), "--pki-dir", str(other))
    assert proc.returncode != 0
    assert "differs from the one on" in proc.stderr + proc.stdout


def test_dry_run_lists_actions_and_changes_nothing(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    cp = cps(lab)[0]
    sh(lab, cp, "rm /etc/crictl.yaml && chmod 0644 /etc/kubernetes/admin.conf")
    try:
        code, report = init_json(cluster["inventory"], cluster["pki"], "--dry-run")
        assert code == 0 and report["dry_run"] is True
        items = {c["item"]: c["status"] for p in report["hosts"][cp]["phases"] for c in p["changes"]}
        assert items["/etc/crictl.yaml"] == "created"
        assert items["/etc/kubernetes/admin.conf"] == "updated"
        _, out, _ = sh(lab, cp, "test -e /etc/crictl.yaml && echo present; stat -c %a /etc/kubernetes/admin.conf")
        assert out.split() == ["644"]  # untouched
    finally:
        init_json(cluster["inventory"], cluster["pki"])
    _, out, _ = sh(lab, cp, "test -e /etc/crictl.yaml && echo present; stat -c %a /etc/kubernetes/admin.conf")
    assert out.split() == ["present", "600"]


def test_changed_host_key_is_refused(cluster: dict[str, Any], tmp_path: Path) -> None:
    lab = cluster["lab"]
    inv_dir = Path(lab.inventory_dir)
    known = inv_dir / "known_hosts"
    original = known.read_text()
    lines = original.splitlines()
    victim = lines[-1].split()[0].split(",")[0]
    donor_key = " ".join(lines[0].split()[1:])
    lines[-1] = f"{lines[-1].split()[0]} {donor_key}"  # another machine's key for this host
    known.write_text("\n".join(lines) + "\n")
    try:
        code, report = init_json(cluster["inventory"], cluster["pki"], "--trust-on-first-use")
    finally:
        known.write_text(original)
    assert code != 0
    assert report["hosts"][victim]["failed"] is True
    assert "changed" in report["hosts"][victim]["error"]
    others = [n for n in report["hosts"] if n != victim]
    assert all(not report["hosts"][n]["failed"] for n in others)


def test_machine_powered_off_mid_run_is_reported_and_rerun_converges(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    victim = workers(lab)[0]
    # Make the worker have real work to do, then cut its power while the run is under way.
    sh(lab, victim, "rm -f /etc/containerd/config.toml /etc/sysctl.d/99-kubernetes.conf")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bootstrap.cli", "init", "-i", str(cluster["inventory"]), "--pki-dir",
         str(cluster["pki"]), "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(0.4)
    ops.stop_machine(lab.name, victim, force=True)
    out, _ = proc.communicate(timeout=240)
    report = json.loads(out)
    assert proc.returncode != 0
    assert report["hosts"][victim]["failed"] is True and report["hosts"][victim]["error"]
    for name in cps(lab):
        assert report["hosts"][name]["failed"] is False, report["hosts"][name]["error"]
    ops.start_machine(lab.name, victim)
    code, again = init_json(cluster["inventory"], cluster["pki"])
    assert code == 0, (again["hosts"][victim], failing_checks(again))
    assert again["hosts"][victim]["failed"] is False
    _, cfg, _ = sh(lab, victim, "grep -c 'SystemdCgroup = true' /etc/containerd/config.toml")
    assert cfg.strip() == "1"


# ---- faults injected on the lab (issue: engine) --------------------------------------------------
def etcd_pids(lab: LabState) -> dict[str, str]:
    out = {}
    for cp in cps(lab):
        _, pid, _ = sh(lab, cp, "systemctl show -p MainPID --value etcd")
        out[cp] = pid.strip()
    return out


def test_hostile_etcd_data_dir_is_refused_before_any_node_is_touched(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    override = Path(lab.inventory_dir) / "group_vars/all/zz-hostile.yml"
    before = etcd_pids(lab)
    _, unit_before, _ = sh(lab, cps(lab)[0], "sha256sum /etc/systemd/system/etcd.service")
    override.write_text("etcd_data_dir: /var/lib/etcd;touch /tmp/x\n")
    try:
        proc = kbootstrap("init", "-i", str(cluster["inventory"]), "--pki-dir", str(cluster["pki"]))
    finally:
        override.unlink()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is not a plain absolute path" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert etcd_pids(lab) == before  # nothing restarted
    _, unit_after, _ = sh(lab, cps(lab)[0], "sha256sum /etc/systemd/system/etcd.service; test -e /tmp/x && echo x")
    assert unit_after.split()[0] == unit_before.split()[0] and "x" not in unit_after.split()[1:]


def test_etcd_config_change_rolls_one_member_at_a_time_and_quorum_holds(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    """A changed etcd flag restarts every member, one at a time, each back in a healthy quorum
    before the next; a probe from the outside sees a quorum answering throughout."""
    import threading

    lab = cluster["lab"]
    config = tmp_path / "kubeadm.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\netcd:\n  local:\n    extraArgs:\n"
        "    - name: heartbeat-interval\n      value: '150'\n"
    )
    before = etcd_pids(lab)
    seen: list[int] = []
    done = threading.Event()

    members = ",".join(f"https://{m.ip}:2379" for m in lab.machines if m.role == "control-plane")
    every = ETCDCTL.replace("--endpoints=https://127.0.0.1:2379", f"--endpoints={members}")

    def probe() -> None:  # each member asked directly: one restarting never hides the others
        while not done.is_set():
            _, out, err = sh(lab, cps(lab)[0], f"{every} --command-timeout=3s endpoint health")
            seen.append((out + err).count("is healthy"))
            time.sleep(0.3)

    watcher = threading.Thread(target=probe, daemon=True)
    watcher.start()
    try:
        code, report = init_json(cluster["inventory"], cluster["pki"], "--config", str(config),
                                 "--skip-phases", "validate")
    finally:
        done.set()
        watcher.join(timeout=30)
    assert code == 0, json.dumps(report["hosts"], indent=1)[:3000]
    after = etcd_pids(lab)
    assert all(after[cp] != before[cp] for cp in cps(lab)), (before, after)  # every member restarted
    for cp in cps(lab):
        _, unit, _ = sh(lab, cp, "grep -c -- '--heartbeat-interval=150' /etc/systemd/system/etcd.service")
        assert unit.strip() == "1"
        items = [c for p in report["hosts"][cp]["phases"] for c in p["changes"] if c["item"] == "etcd health"]
        assert items, report["hosts"][cp]["phases"]  # each restart waited for a healthy quorum
    # Restarts one at a time: start times apart, in some order, never two within the same second.
    starts = []
    for cp in cps(lab):
        _, ts, _ = sh(lab, cp, "systemctl show -p ActiveEnterTimestampMonotonic --value etcd")
        starts.append(int(ts.strip()))
    starts.sort()
    assert all(b - a > 500_000 for a, b in itertools.pairwise(starts)), starts
    assert seen and min(seen) >= 2, seen  # a quorum answered throughout
    # Back to the inventory's flags (rolls again), and the cluster is as before.
    code, report = init_json(cluster["inventory"], cluster["pki"], "--skip-phases", "validate")
    assert code == 0


def test_dead_etcd_member_fails_alone_and_the_survivors_converge(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    victim = cps(lab)[-1]
    ops.stop_machine(lab.name, victim, force=True)
    try:
        started = time.monotonic()
        code, report = init_json(cluster["inventory"], cluster["pki"])
        elapsed = time.monotonic() - started
        assert code != 0
        assert report["hosts"][victim]["failed"] is True and report["hosts"][victim]["error"]
        for name in [n for n in report["hosts"] if n != victim]:
            host = report["hosts"][name]
            assert host["failed"] is False, (name, host["error"])
        health = [c for p in report["hosts"][cps(lab)[0]]["phases"] for c in p["changes"]
                  if c["item"] == "etcd health"]
        assert health and health[-1]["status"] == "warning" and "2 of 3 members healthy" in health[-1]["detail"]
        # An unreachable host is a failure in every report and summary.
        validation = report["validation"]
        assert validation["ok"] is False
        assert validation["netcheck"]["summary"].startswith(f"netcheck: FAILED: 1 unreachable ({victim})")
        assert "FAILED: 1 not checked" in validation["validate"]["summary"]
        assert elapsed < 240  # no health wait outlives its script: the run ends with its own messages
    finally:
        ops.start_machine(lab.name, victim)
    code, again = init_json(cluster["inventory"], cluster["pki"])
    assert code == 0, (again["hosts"][victim], failing_checks(again))


def test_ctrl_c_says_so_at_once_and_stops_at_a_safe_point(cluster: dict[str, Any]) -> None:
    import signal

    lab = cluster["lab"]
    for m in lab.machines:  # work for every host: the run is in a phase when Ctrl-C comes
        sh(lab, m.name, "rm -f /etc/containerd/config.toml /etc/sysctl.d/99-kubernetes.conf")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bootstrap.cli", "init", "-i", str(cluster["inventory"]), "--pki-dir",
         str(cluster["pki"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # progress: one line per host and phase (not a terminal)
        lines.append(line)
        if line.startswith("[kernel]"):
            break
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    told = None
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("interrupted:"):
            told = time.monotonic() - sent
            break
    out, rest = proc.communicate(timeout=120)
    assert told is not None and told < 2.0, "".join(lines) + rest
    assert proc.returncode == 1
    assert "INTERRUPTED (Ctrl-C)" in out and "not run (interrupted)" in "".join(lines) + rest
    code, again = init_json(cluster["inventory"], cluster["pki"])  # a rerun converges
    assert code == 0, failing_checks(again)
