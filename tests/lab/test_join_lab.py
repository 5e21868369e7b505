"""Growing and shrinking a real cluster: init one control plane (etcd in host mode), join two more
one at a time (etcd 1 -> 2 -> 3, checked after each step), remove one gracefully (3 -> 2), join it
again, then power one off and remove it with --force (3 -> 2); a worker joins with the expected
files and modes. The CLI runs in a subprocess over real SSH; the lab is torn down even on failure.

"Only cp1 for now" is expressed the Kubespray way: the first run uses an inventory that lists only
cp1; the full inventory (all hosts) is then used with `join -i --limit HOST` for each new host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.lab import ops
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh

pytestmark = pytest.mark.lab
PKI = "/etc/kubernetes/pki"
ETCDCTL = (
    f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/etcd/ca.crt "
    f"--cert={PKI}/etcd/healthcheck-client.crt --key={PKI}/etcd/healthcheck-client.key"
)





def kbootstrap(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def cps(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "control-plane"]


def workers(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "worker"]


def run_json(*args: str, timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    proc = kbootstrap(*args, "-o", "json", timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None


def inventory_copy(
    src: Path, dst: Path, *, keep: list[str] | None = None, skip: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A copy of the lab inventory, limited to `keep` hosts, with another phase skip list and/or
    extra group vars."""
    shutil.copytree(src, dst)
    hosts = dst / "hosts.yaml"
    if keep is not None:
        doc = yaml.safe_load(hosts.read_text())
        doc["all"]["hosts"] = {k: v for k, v in doc["all"]["hosts"].items() if k in keep}
        for group in doc["all"]["children"].values():
            if group and group.get("hosts"):
                group["hosts"] = {k: v for k, v in group["hosts"].items() if k in keep}
        hosts.write_text(yaml.safe_dump(doc, sort_keys=False))
    if skip is not None or extra:
        gv = dst / "group_vars" / "all" / "lab.yml"
        lab_vars = yaml.safe_load(gv.read_text())
        if skip is not None:
            lab_vars["kbootstrap_skip_phases"] = skip
        lab_vars.update(extra or {})
        gv.write_text(yaml.safe_dump(lab_vars, sort_keys=False))
    return hosts


def members(lab: LabState, via: str) -> list[dict[str, Any]]:
    code, out, err = sh(lab, via, f"{ETCDCTL} member list -w json")
    assert code == 0, err
    return list(json.loads(out)["members"])


def assert_etcd(lab: LabState, via: str, names: list[str]) -> None:
    """`member list` shows exactly names, all started voting members; every member healthy."""
    listed = members(lab, via)
    assert sorted(m.get("name", "") for m in listed) == sorted(names), listed
    assert not any(m.get("isLearner") for m in listed), listed
    code, out, err = sh(lab, via, f"{ETCDCTL} endpoint health --cluster")
    assert code == 0, out + err
    assert (out + err).count("is healthy") == len(names), out + err


@pytest.fixture(scope="module")
def grown(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab: LabState = module_lab_factory(control_planes=3, workers=1)
    tmp = tmp_path_factory.mktemp("join")
    full = Path(lab.inventory_dir) / "hosts.yaml"
    cp = cps(lab)
    # The cluster is designed for 3 control planes from the start: the first run already uses the
    # API endpoint the full inventory gets (Kubespray's localhost proxies), so its SANs agree.
    first = inventory_copy(Path(lab.inventory_dir), tmp / "cp1-only", keep=[cp[0]],
                           extra={"kbootstrap_api_endpoint_mode": "localhost"})
    pki = tmp / "pki"
    code, report, err = run_json("init", "-i", str(first), "--pki-dir", str(pki))
    assert code == 0, json.dumps(report, indent=1)[:3000] + err
    return {"lab": lab, "full": full, "pki": pki, "tmp": tmp}


def join(ctx: dict[str, Any], host: str, inventory: Path | None = None) -> dict[str, Any]:
    code, report, err = run_json("join", "-i", str(inventory or ctx["full"]), "--pki-dir", str(ctx["pki"]),
                                 "--limit", host)
    assert code == 0, json.dumps(report, indent=1)[:4000] + err
    return report


def test_etcd_grows_one_member_at_a_time(grown: dict[str, Any]) -> None:
    lab = grown["lab"]
    cp = cps(lab)
    assert_etcd(lab, cp[0], [cp[0]])
    report = join(grown, cp[1])
    changes = {c["item"]: c for p in report["hosts"][cp[1]]["phases"] for c in p["changes"]}
    assert "added https://" in changes[f"etcd member {cp[1]}"]["detail"] or changes[f"etcd member {cp[1]}"]
    assert_etcd(lab, cp[0], cp[:2])
    join(grown, cp[2])
    assert_etcd(lab, cp[0], cp)
    assert_etcd(lab, cp[2], cp)
    # The joined control planes got the shared CAs, their own certs and kubeconfigs, no super-admin.conf.
    code, out, _ = sh(lab, cp[2], f"cmp {PKI}/ca.key {PKI}/ca.key && find /etc/kubernetes -type f -printf '%m %p\\n'")
    assert code == 0
    files = dict(reversed(line.split(" ", 1)) for line in out.strip().splitlines())
    assert "/etc/kubernetes/super-admin.conf" not in files
    for f in ("admin.conf", "controller-manager.conf", "scheduler.conf", "pki/etcd/peer.key",
              "manifests/kube-apiserver.yaml"):
        assert files[f"/etc/kubernetes/{f}"] == "600", f
    _, ca1, _ = sh(lab, cp[0], f"sha256sum {PKI}/ca.key {PKI}/etcd/ca.key {PKI}/sa.key | cut -d' ' -f1")
    _, ca3, _ = sh(lab, cp[2], f"sha256sum {PKI}/ca.key {PKI}/etcd/ca.key {PKI}/sa.key | cut -d' ' -f1")
    assert ca1 == ca3


def test_join_rerun_changes_nothing(grown: dict[str, Any]) -> None:
    lab = grown["lab"]
    cp = cps(lab)
    report = join(grown, f"{cp[1]},{cp[2]}")
    assert {n: h["changed"] for n, h in report["hosts"].items()} == {cp[1]: 0, cp[2]: 0}
    assert_etcd(lab, cp[0], cp)


def test_init_on_the_grown_cluster_leaves_etcd_alone(grown: dict[str, Any]) -> None:
    """A later `init -i` with every host in the inventory must not rewrite the members' etcd units
    (their --initial-cluster was fixed when each member bootstrapped) nor restart them."""
    lab = grown["lab"]
    cp = cps(lab)
    _, before, _ = sh(lab, cp[0], "systemctl show -p ExecMainStartTimestampMonotonic etcd")
    no_worker = inventory_copy(Path(lab.inventory_dir), grown["tmp"] / "cps-only", keep=cp)
    code, report, err = run_json("init", "-i", str(no_worker), "--pki-dir", str(grown["pki"]))
    assert code == 0, err
    # The one change: kubeadm-config's etcd (host mode: an external etcd to kubeadm) now lists the
    # members that joined; the join runs do not re-upload it. A second run changes nothing at all.
    changed = {n: [c["item"] for p in h["phases"] for c in p["changes"] if c["status"] in ("created", "updated")]
               for n, h in report["hosts"].items()}
    assert changed == {**{n: [] for n in cp}, cp[0]: ["ConfigMap kube-system/kubeadm-config"]}, changed
    code, report, err = run_json("init", "-i", str(no_worker), "--pki-dir", str(grown["pki"]))
    assert code == 0, err
    assert {n: h["changed"] for n, h in report["hosts"].items()} == dict.fromkeys(cp, 0)
    _, after, _ = sh(lab, cp[0], "systemctl show -p ExecMainStartTimestampMonotonic etcd")
    assert before == after  # not restarted
    assert_etcd(lab, cp[1], cp)


def test_worker_join_writes_expected_files_and_modes(grown: dict[str, Any]) -> None:
    """The worker joins the running cluster through TLS bootstrap: the kubelet started with a
    bootstrap token the cluster knows, its CSR approved, kubelet.conf written by the kubelet; the
    bootstrap credential gone afterwards, as kubeadm join does."""
    lab = grown["lab"]
    w = workers(lab)[0]
    report = join(grown, w)
    items = {c["item"]: c for p in report["hosts"][w]["phases"] for c in p["changes"]}
    assert items["start kubelet"]["status"] == "updated"
    assert "CSR approved" in items["/etc/kubernetes/kubelet.conf"]["detail"]
    token_note = next(c for i, c in items.items() if i.startswith("bootstrap token "))
    assert token_note["status"] == "unchanged"
    code, out, _ = sh(lab, w, "find /etc/kubernetes /var/lib/kubelet -maxdepth 1 -type f -printf '%m %p\\n' | sort -k2")
    assert code == 0
    # The kubelet's own state files (cpu_manager_state, allocated_pods_state, ...) are its business.
    files = {p: m for m, p in (line.split(" ", 1) for line in out.strip().splitlines()) if not p.endswith("_state")}
    assert files == {
        "/etc/kubernetes/kubelet.conf": "600",
        "/var/lib/kubelet/config.yaml": "600",
        "/var/lib/kubelet/kubeadm-flags.env": "644",
        **({"/var/lib/kubelet/instance-config.yaml": "600"} if "/var/lib/kubelet/instance-config.yaml" in files
           else {}),
    }
    assert sh(lab, w, f"stat -c %a {PKI}/ca.crt")[1].strip() == "600"
    _, conf, _ = sh(lab, w, "cat /etc/kubernetes/kubelet.conf")
    kc = yaml.safe_load(conf)
    assert kc["users"][0]["user"]["client-certificate"] == "/var/lib/kubelet/pki/kubelet-client-current.pem"
    assert kc["clusters"][0]["cluster"]["server"] in (f"https://{lab.machine(cps(lab)[0]).ip}:6443",
                                                      "https://localhost:6443")


def test_remove_node_shrinks_etcd_and_cleans_the_node(grown: dict[str, Any]) -> None:
    lab = grown["lab"]
    cp = cps(lab)
    code, report, err = run_json("remove-node", "-i", str(grown["full"]), "--node", cp[2])
    assert code == 0, json.dumps(report, indent=1) + err
    assert_etcd(lab, cp[0], cp[:2])
    code, out, _ = sh(lab, cp[2], "ls -A /etc/kubernetes/pki /etc/kubernetes/manifests /var/lib/etcd; "
                      "test -e /etc/systemd/system/etcd.service && echo unit; systemctl is-active etcd")
    assert out.split() == ["/etc/kubernetes/manifests:", "/etc/kubernetes/pki:", "/var/lib/etcd:", "inactive"], out
    # A reset node joins again like a new one.
    join(grown, cp[2])
    assert_etcd(lab, cp[0], cp)


def shrink_to_first_control_plane(grown: dict[str, Any]) -> None:
    """remove-node the other control planes (last first): etcd is down to cp1's member."""
    lab = grown["lab"]
    cp = cps(lab)
    for n in reversed(cp[1:]):
        code, report, err = run_json("remove-node", "-i", str(grown["full"]), "--node", n)
        assert code == 0, json.dumps(report, indent=1) + err
    assert_etcd(lab, cp[0], cp[:1])


def test_two_control_planes_join_in_one_ssh_run(grown: dict[str, Any]) -> None:
    """`join -i --limit cp2,cp3`: the second member add comes seconds after the first promote, while
    etcd does not yet count the new member active ("unhealthy cluster"): it is retried, not failed."""
    lab = grown["lab"]
    cp = cps(lab)
    shrink_to_first_control_plane(grown)
    report = join(grown, f"{cp[1]},{cp[2]}")
    assert report["etcd_joined_through"] == cp[0]
    assert_etcd(lab, cp[0], cp)


def brief(report: dict[str, Any]) -> str:
    """Per host: changed, and the error if any (full reports are too long for an assertion message)."""
    return json.dumps({n: [h["changed"], h["error"]] for n, h in report.get("hosts", {}).items()}, indent=1)


def test_ansible_scale_joins_control_planes_one_at_a_time(grown: dict[str, Any]) -> None:
    """scale.yml (`join -i --transport ansible`) grows etcd as `join -i` does over SSH: two removed
    control planes come back through the healthy member, one learner at a time (etcd refuses a
    second learner while one is pending), with the shared CAs and no super-admin.conf. A dry run
    first changes nothing; reruns over either transport change nothing."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core is not installed (pip install ansible-core)")
    lab = grown["lab"]
    cp = cps(lab)
    shrink_to_first_control_plane(grown)
    join_args = ("join", "-i", str(grown["full"]), "--pki-dir", str(grown["pki"]), "--limit", f"{cp[1]},{cp[2]}",
                 "--transport", "ansible")

    code, report, err = run_json(*join_args, "--dry-run")
    assert code == 0, brief(report) + err[-3000:]
    planned = {c["item"]: c["status"] for p in report["hosts"][cp[1]]["phases"] for c in p["changes"]}
    assert planned[f"etcd member {cp[1]}"] == "created"
    assert_etcd(lab, cp[0], cp[:1])
    _, out, _ = sh(lab, cp[1], "ls -A /etc/kubernetes/pki | wc -l")
    assert out.strip() == "0"

    code, report, err = run_json(*join_args)
    assert code == 0, brief(report) + err[-3000:]
    assert report["transport"] == "ansible" and report["etcd_joined_through"] == cp[0]
    for n in cp[1:]:
        details = [c.get("detail", "") for p in report["hosts"][n]["phases"] for c in p["changes"]
                   if c["item"] == f"etcd member {n}"]
        assert any(d.startswith("added https://") for d in details) and "promoted to a voting member" in details
    assert_etcd(lab, cp[0], cp)
    assert_etcd(lab, cp[2], cp)
    code, out, _ = sh(lab, cp[2], "ls /etc/kubernetes/*.conf")
    assert out.split() == [f"/etc/kubernetes/{k}.conf" for k in ("admin", "controller-manager", "kubelet", "scheduler")]
    keys = f"sha256sum {PKI}/ca.key {PKI}/etcd/ca.key {PKI}/sa.key | cut -d' ' -f1"
    assert sh(lab, cp[0], keys)[1] == sh(lab, cp[1], keys)[1] == sh(lab, cp[2], keys)[1]

    code, report, err = run_json(*join_args)
    assert code == 0, err
    assert {n: h["changed"] for n, h in report["hosts"].items()} == {cp[1]: 0, cp[2]: 0}
    code, report, err = run_json(*join_args[:-2])  # the same nodes, seen by the SSH transport
    assert code == 0, err
    assert {n: h["changed"] for n, h in report["hosts"].items()} == {cp[1]: 0, cp[2]: 0}
    assert_etcd(lab, cp[0], cp)


def test_remove_node_force_of_a_powered_off_control_plane(grown: dict[str, Any]) -> None:
    lab = grown["lab"]
    cp = cps(lab)
    ops.stop_machine(lab.name, cp[1], force=True)
    refused = kbootstrap("remove-node", "-i", str(grown["full"]), "--node", cp[1], timeout=120)
    assert refused.returncode != 0 and "--force" in refused.stderr, refused.stderr
    assert len(members(lab, cp[0])) == 3  # nothing was removed
    code, report, err = run_json("remove-node", "-i", str(grown["full"]), "--node", cp[1], "--force")
    assert code == 0, json.dumps(report, indent=1) + err
    phases = {p["name"]: p for p in report["hosts"][cp[1]]["phases"]}
    assert phases["cleanup-node"]["skipped"].startswith("--force")
    assert_etcd(lab, cp[0], [cp[0], cp[2]])
