"""The Ansible transport on real lab machines: the same nodes as the SSH transport, idempotent,
lint-clean, and Molecule's full sequence.

Two labs of 1 control plane + 1 worker: one provisioned by `kbootstrap init -i` over SSH, the other
by playbooks/cluster.yml through ansible-runner (`init_ansible`). Their node file trees
must match: same paths and modes everywhere; same sha256 once the lab's name and subnet are replaced
by placeholders; certificates by subject, issuer and SANs (keys, serials and validity are per run);
kubeconfigs by their parsed content with embedded certificates reduced to their subject.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from bootstrap.lab.state import LabState
from bootstrap.lab.testing import NODE_PATHS, sh, unique_name

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]

# What init writes on a node, and a place it must not leave anything.
ROOTS = (*NODE_PATHS, "/usr/sbin/policy-rc.d")
# Runtime state or per-run stamps (checksum stamps record inode and mtime): compared by path and mode only.
CONTENT_VARIES = ("/var/lib/kbootstrap/checksums/",)

SNAPSHOT = r"""
import hashlib, json, os, stat, sys, base64
out = {}
def add(p):
    st = os.lstat(p)
    kind = ("l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode)
            else "f" if stat.S_ISREG(st.st_mode) else "o")  # o: a socket or fifo, never opened
    e = {"mode": oct(st.st_mode & 0o7777), "kind": kind}
    if kind == "l":
        e["target"] = os.readlink(p)
    elif kind == "f":
        data = open(p, "rb").read()
        e["sha256"] = hashlib.sha256(data).hexdigest()
        if p.endswith((".crt", ".conf", ".pub", ".key", ".yaml", ".service", ".toml", ".env")) and len(data) < 200000:
            e["b64"] = base64.b64encode(data).decode()
    out[p] = e
for root in sys.argv[1:]:
    if not os.path.lexists(root):
        continue
    add(root)
    if os.path.isdir(root) and not os.path.islink(root):
        for d, dirs, files in os.walk(root):
            for n in dirs + files:
                add(os.path.join(d, n))
print(json.dumps(out))
"""


def snapshot(lab: LabState, machine: str) -> dict[str, dict[str, Any]]:
    code, out, err = sh(lab, machine, "python3 - " + " ".join(ROOTS), stdin=SNAPSHOT, timeout=120)
    assert code == 0, err
    return json.loads(out)


def normalizer(lab: LabState) -> Any:
    prefix = lab.subnet.split("/")[0].rsplit(".", 1)[0] + "."

    def norm(text: str) -> str:
        text = text.replace(lab.name, "LAB").replace(prefix, "NET.")
        # Bootstrap token ids are drawn at random on each cluster.
        return re.sub(r"(bootstrap-token-|bootstrap token )[a-z0-9]{6}\b", r"\1ID", text)

    return norm


def cert_view(pem: bytes, norm: Any) -> dict[str, Any]:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = sorted(norm(str(v)) for v in [*san.get_values_for_type(x509.DNSName),
                                             *san.get_values_for_type(x509.IPAddress)])
    except x509.ExtensionNotFound:
        sans = []
    return {"subject": norm(cert.subject.rfc4514_string()), "issuer": norm(cert.issuer.rfc4514_string()),
            "sans": sans, "ca": _is_ca(cert)}


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def kubeconfig_view(data: bytes, norm: Any) -> Any:
    doc = yaml.safe_load(data)
    for c in doc.get("clusters") or []:
        ca = c.get("cluster", {}).pop("certificate-authority-data", None)
        if ca:
            c["cluster"]["ca"] = cert_view(base64.b64decode(ca), norm)["subject"]
    for u in doc.get("users") or []:
        user = u.get("user", {})
        if user.pop("client-key-data", None):
            user["key"] = "present"
        cert = user.pop("client-certificate-data", None)
        if cert:
            user["cert"] = cert_view(base64.b64decode(cert), norm)
    return json.loads(norm(json.dumps(doc, sort_keys=True)))


def comparable(lab: LabState, tree: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """path (normalized) -> what must match across transports."""
    norm = normalizer(lab)
    out: dict[str, Any] = {}
    for path, e in tree.items():
        view: dict[str, Any] = {"mode": e["mode"], "kind": e["kind"]}
        data = base64.b64decode(e["b64"]) if "b64" in e else None
        if e["kind"] == "l":
            view["target"] = norm(e["target"])
        elif e["kind"] != "f" or path.startswith(CONTENT_VARIES):
            pass
        elif path.endswith(".key") or path.endswith("/sa.pub"):
            view["content"] = "private key" if path.endswith(".key") else "public key"  # per run, by nature
        elif path.endswith(".crt") and data is not None:
            view["cert"] = cert_view(data, norm)
        elif path.endswith(".conf") and path.startswith("/etc/kubernetes/") and data is not None:
            view["kubeconfig"] = kubeconfig_view(data, norm)
        elif data is not None:
            view["sha256"] = hashlib.sha256(norm(data.decode(errors="surrogateescape"))
                                            .encode(errors="surrogateescape")).hexdigest()
        else:
            view["sha256"] = e["sha256"]
        out[norm(path)] = view
    return out


def cps(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "control-plane"]


def workers(lab: LabState) -> list[str]:
    return [m.name for m in lab.machines if m.role == "worker"]


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def ansible_fleet(fn: str, params: dict[str, Any], timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    """bootstrap.commands.ansible.FN(params) in a subprocess, as the CLI calls it: exit code, JSON."""
    code = f"from bootstrap.commands.ansible import {fn}; import json, sys; {fn}(json.loads(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps({**params, "output": "json"})],
                          capture_output=True, text=True, timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None


@pytest.fixture(scope="module")
def labs(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core is not installed (pip install ansible-core)")
    ssh_lab: LabState = module_lab_factory(control_planes=1, workers=1)
    ans_lab: LabState = module_lab_factory(control_planes=1, workers=1)
    pki = tmp_path_factory.mktemp("pki")
    ssh_inv = Path(ssh_lab.inventory_dir) / "hosts.yaml"
    ans_inv = Path(ans_lab.inventory_dir) / "hosts.yaml"
    started = time.monotonic()
    ssh = cli("init", "-i", str(ssh_inv), "--pki-dir", str(pki / "ssh"), "-o", "json")
    ssh_seconds = time.monotonic() - started
    assert ssh.returncode == 0, ssh.stdout[-3000:] + ssh.stderr
    started = time.monotonic()
    code, report, err = ansible_fleet("init_ansible", {"inventory": str(ans_inv), "pki_dir": str(pki / "ans")})
    ans_seconds = time.monotonic() - started
    return {"ssh": ssh_lab, "ans": ans_lab, "ssh_report": json.loads(ssh.stdout), "ans_report": report,
            "ans_code": code, "ans_err": err, "pki": pki, "ans_inv": ans_inv,
            "seconds": (ssh_seconds, ans_seconds)}


def test_ansible_run_reports_like_ssh(labs: dict[str, Any]) -> None:
    report, ssh = labs["ans_report"], labs["ssh_report"]
    assert labs["ans_code"] == 0, json.dumps(report, indent=1)[:3000] + labs["ans_err"]
    assert report["transport"] == "ansible"
    assert set(report) - {"transport"} == set(ssh)
    assert report["skipped_phases"] == ssh["skipped_phases"]
    for role, names in (("cp", (cps(labs["ans"])[0], cps(labs["ssh"])[0])),
                        ("w", (workers(labs["ans"])[0], workers(labs["ssh"])[0]))):
        a, s = report["hosts"][names[0]], ssh["hosts"][names[1]]
        assert a["failed"] is False and a["error"] is None, (role, a)
        assert set(a) == set(s)
        assert [p["name"] for p in a["phases"]] == [p["name"] for p in s["phases"]], role
        # Per phase, the same items with the same statuses (a fresh node: everything created).
        norm_a, norm_s = normalizer(labs["ans"]), normalizer(labs["ssh"])
        for pa, ps in zip(a["phases"], s["phases"], strict=True):
            items_a = sorted((norm_a(c["item"]), c["status"]) for c in pa["changes"])
            items_s = sorted((norm_s(c["item"]), c["status"]) for c in ps["changes"])
            assert items_a == items_s, (role, pa["name"])
    assert report["validation"]["validate"]["ok"] is True, report["validation"]["validate"]["summary"]
    # netcheck ran from every node through Ansible: the same probes with the same outcomes as over SSH.
    net_a, net_s = report["validation"]["netcheck"], ssh["validation"]["netcheck"]
    assert net_a["ok"] is True, net_a["summary"]
    assert "skipped" not in report["validation"]

    def probes(net: dict[str, Any], norm: Any) -> list[tuple[str, ...]]:
        return sorted(tuple(norm(str(p.get(k, ""))) for k in ("source", "target", "kind", "subject", "port", "status"))
                      for p in net["probes"])

    assert probes(net_a, normalizer(labs["ans"])) == probes(net_s, normalizer(labs["ssh"]))
    assert net_a["counts"] == net_s["counts"]
    print(f"fresh 1+1 lab: ssh {labs['seconds'][0]:.1f}s, ansible {labs['seconds'][1]:.1f}s")


def test_node_trees_match_across_transports(labs: dict[str, Any]) -> None:
    for a, s in ((cps(labs["ans"])[0], cps(labs["ssh"])[0]), (workers(labs["ans"])[0], workers(labs["ssh"])[0])):
        tree_a = comparable(labs["ans"], snapshot(labs["ans"], a))
        tree_s = comparable(labs["ssh"], snapshot(labs["ssh"], s))
        assert "/etc/kubernetes/pki/ca.crt" in tree_a and "/usr/sbin/policy-rc.d" not in tree_a
        only_a, only_s = sorted(set(tree_a) - set(tree_s)), sorted(set(tree_s) - set(tree_a))
        assert not only_a and not only_s, f"{a}: only ansible {only_a[:10]}, only ssh {only_s[:10]}"
        diff = {p: (tree_a[p], tree_s[p]) for p in tree_a if tree_a[p] != tree_s[p]}
        assert not diff, f"{a}: {json.dumps(diff, indent=1)[:3000]}"
    # The certs compared carry real content: a control plane's apiserver cert names its node and IP.
    apiserver = comparable(labs["ans"], snapshot(labs["ans"], cps(labs["ans"])[0]))["/etc/kubernetes/pki/apiserver.crt"]
    assert "LAB-cp1" in apiserver["cert"]["sans"] and "NET.10" in apiserver["cert"]["sans"]


def test_second_ansible_run_changes_nothing(labs: dict[str, Any]) -> None:
    from bootstrap.ansible.playbook import run_playbook

    lab = labs["ans"]
    names = [m.name for m in lab.machines]
    run = run_playbook(labs["ans_inv"], "cluster.yml", hosts=names,
                       extravars={"kbootstrap_pki_dir": str(labs["pki"] / "ans")})
    assert run.rc == 0, {n: r.error for n, r in run.collector.reports.items()}
    # Ansible's own recap: changed=0 on every host, nothing failed.
    assert {n: run.collector.stats[n].get("changed", 0) for n in names} == dict.fromkeys(names, 0)
    assert all(run.collector.stats[n].get("failures", 0) == 0 for n in names)
    assert {n: run.collector.reports[n].changed for n in names} == dict.fromkeys(names, 0)
    print(f"ansible rerun {run.seconds:.1f}s; slowest tasks: {run.collector.task_profile(3)}")


def test_check_mode_lists_changes_and_changes_nothing(labs: dict[str, Any]) -> None:
    lab = labs["ans"]
    cp = cps(lab)[0]
    sh(lab, cp, "rm /etc/crictl.yaml && chmod 0644 /etc/kubernetes/admin.conf")
    params = {"inventory": str(labs["ans_inv"]), "pki_dir": str(labs["pki"] / "ans")}
    try:
        code, report, err = ansible_fleet("init_ansible", {**params, "dry_run": True})
        assert code == 0, err
        assert report["dry_run"] is True and report["validation"] is None
        items = {c["item"]: c["status"] for p in report["hosts"][cp]["phases"] for c in p["changes"]}
        assert items["/etc/crictl.yaml"] == "created"
        assert items["/etc/kubernetes/admin.conf"] == "updated"
        _, out, _ = sh(lab, cp, "test -e /etc/crictl.yaml && echo present; stat -c %a /etc/kubernetes/admin.conf")
        assert out.split() == ["644"]
    finally:
        code, report, err = ansible_fleet("init_ansible", params)
    assert code == 0, err
    assert report["hosts"][cp]["changed"] == 2


def test_netcheck_failure_is_a_validation_failure_naming_the_probe(labs: dict[str, Any]) -> None:
    """A blocked etcd client port on the control plane: the Ansible run fails on validation with that
    one probe named (worker -> control plane, 2379), the hosts themselves converged."""
    from bootstrap.lab import ops

    lab = labs["ans"]
    cp, w = cps(lab)[0], workers(lab)[0]
    ops.block(lab.name, cp, port=2379, peer=w)
    try:
        code, report, err = ansible_fleet("init_ansible", {"inventory": str(labs["ans_inv"]),
                                                                     "pki_dir": str(labs["pki"] / "ans")})
    finally:
        ops.heal(lab.name, cp)
    assert code == 1, err
    assert all(not h["failed"] for h in report["hosts"].values()), report["hosts"]
    net = report["validation"]["netcheck"]
    assert net["failed_pairs"] == [{"source": w, "target": cp, "failed": ["2379"]}], net["summary"]
    assert report["validation"]["validate"]["ok"] is True


def test_changed_host_key_is_refused_for_that_host_only(labs: dict[str, Any]) -> None:
    lab = labs["ans"]
    known = Path(lab.inventory_dir) / "known_hosts"
    original = known.read_text()
    lines = original.splitlines()
    victim = lines[-1].split()[0].split(",")[0]
    lines[-1] = f"{lines[-1].split()[0]} {' '.join(lines[0].split()[1:])}"  # another machine's key
    known.write_text("\n".join(lines) + "\n")
    try:
        code, report, _ = ansible_fleet("init_ansible", {"inventory": str(labs["ans_inv"]),
                                                                   "pki_dir": str(labs["pki"] / "ans")})
    finally:
        known.write_text(original)
    assert code != 0
    err = report["hosts"][victim]["error"] or ""
    assert report["hosts"][victim]["failed"] is True and "\n" not in err
    assert "host key" in err.lower() or "verification failed" in err.lower(), err
    assert all(not h["failed"] for n, h in report["hosts"].items() if n != victim)


def test_worker_rejoins_with_scale_playbook(labs: dict[str, Any]) -> None:
    """reset.yml --limit the worker, then scale.yml (join -i --transport ansible) brings it back;
    a rerun, and `join -i` over SSH, change nothing."""
    lab = labs["ans"]
    w = workers(lab)[0]
    params = {"inventory": str(labs["ans_inv"]), "pki_dir": str(labs["pki"] / "ans")}
    code = subprocess.run([sys.executable, "-c", "from bootstrap.commands.ansible import reset_ansible as r;"
                           f"r({{**{params!r}, 'output': 'json'}}, [{w!r}])"],
                          capture_output=True, text=True, timeout=300).returncode
    assert code == 0
    _, out, _ = sh(lab, w, "ls /etc/kubernetes/pki | wc -l")
    assert out.strip() == "0"
    join = f"from bootstrap.commands.ansible import join_ansible as j; j({{**{params!r}, 'output': 'json'}}, [{w!r}])"
    proc = subprocess.run([sys.executable, "-c", join], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert set(report["hosts"]) == {w} and report["hosts"][w]["changed"] >= 2
    assert "join-workers/tls-bootstrap" in [p["name"] for p in report["hosts"][w]["phases"]]
    # Joined through TLS bootstrap: the kubelet's own kubelet.conf, the bootstrap credential gone.
    _, out, _ = sh(lab, w, "stat -c '%a %n' /etc/kubernetes/pki/ca.crt /etc/kubernetes/kubelet.conf; "
                   "test -e /etc/kubernetes/bootstrap-kubelet.conf && echo still-there")
    assert out.split() == ["600", "/etc/kubernetes/pki/ca.crt", "600", "/etc/kubernetes/kubelet.conf"]
    again = json.loads(subprocess.run([sys.executable, "-c", join], capture_output=True, text=True, timeout=600).stdout)
    assert again["hosts"][w]["changed"] == 0
    ssh = cli("join", "-i", params["inventory"], "--limit", w, "--pki-dir", params["pki_dir"], "-o", "json")
    assert ssh.returncode == 0 and json.loads(ssh.stdout)["hosts"][w]["changed"] == 0
    # Control planes are refused by scale.yml with one line that says what to use instead.
    cp = cps(lab)[0]
    bad = subprocess.run([sys.executable, "-c", join.replace(repr(w), repr(cp))], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0


def test_reset_playbook_undoes_init(labs: dict[str, Any]) -> None:
    """Last in this module: it leaves the Ansible lab reset."""
    lab = labs["ans"]
    code, report, err = ansible_fleet("reset_ansible", {"inventory": str(labs["ans_inv"]),
                                                                  "pki_dir": str(labs["pki"] / "ans")})
    assert code == 0, err + json.dumps(report)[:2000]
    assert all(not h["failed"] for h in report["hosts"].values())
    for m in lab.machines:
        _, out, _ = sh(lab, m.name, "find /etc/kubernetes/pki /etc/kubernetes/manifests -type f | wc -l; "
                       "test -e /etc/systemd/system/etcd.service && echo unit; ls /etc/kubernetes/*.conf 2>/dev/null")
        assert out.split() == ["0"], (m.name, out)
    # A second reset finds nothing to do and says so: changed=0 in Ansible's recap and in our report.
    code, report, err = ansible_fleet("reset_ansible", {"inventory": str(labs["ans_inv"]),
                                                                  "pki_dir": str(labs["pki"] / "ans")})
    assert code == 0, err
    assert {n: h["changed"] for n, h in report["hosts"].items()} == dict.fromkeys(report["hosts"], 0)
    from bootstrap.ansible.playbook import run_playbook

    names = [m.name for m in lab.machines]
    run = run_playbook(labs["ans_inv"], "reset.yml", hosts=names)
    assert {n: run.collector.stats[n].get("changed", 0) for n in names} == dict.fromkeys(names, 0)


# ---- tools -----------------------------------------------------------------------------------------
def test_ansible_lint_production_profile() -> None:
    if shutil.which("ansible-lint") is None:
        pytest.skip("ansible-lint is not installed (pip install ansible-lint)")
    proc = subprocess.run(["ansible-lint", "--profile", "production", "--offline", "playbooks/"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_molecule_default_scenario(lab_host: None, bundle: Path) -> None:
    """create (kbootstrap lab up) -> converge (cluster.yml) -> idempotence -> verify (testinfra) -> destroy."""
    if shutil.which("molecule") is None or shutil.which("ansible-playbook") is None:
        pytest.skip("molecule or ansible-core is not installed (pip install molecule ansible-core)")
    env = {**os.environ, "KBOOTSTRAP_MOLECULE_LAB": unique_name("m"), "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(["molecule", "test"], cwd=REPO, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
