"""`kbootstrap join --discovery-file` on a --rootfs: files, modes, reruns, and refusals that write nothing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.join import join
from bootstrap.pki.authority import generate_key, new_ca
from bootstrap.pki.store import cert_pem
from bootstrap.spec.model import EncryptionAlgorithm

CLI = EdgeGroup(commands={"join": join})
TOKEN = "abcdef.0123456789abcdef"


def _ca_pem() -> bytes:
    from datetime import UTC, datetime, timedelta

    key = generate_key(EncryptionAlgorithm.ECDSA_P256)
    now = datetime.now(UTC)
    return cert_pem(new_ca("kubernetes", key, not_before=now, not_after=now + timedelta(days=1)))


def discovery_file(tmp: Path, *, token: str | None = None, ca: bytes | None = None) -> Path:
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": "https://10.0.0.1:6443"}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "kubernetes", "cluster": cluster}],
           "contexts": [{"name": "c", "context": {"cluster": "kubernetes", "user": "u"}}],
           "users": [{"name": "u", "user": user}]}
    path = tmp / "discovery.conf"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(root: Path, *args: str) -> Any:
    root.mkdir(exist_ok=True)
    return CliRunner().invoke(CLI, ["join", *args, "--rootfs", str(root), "--node-name", "w1",
                                    "--apiserver-advertise-address", "10.0.0.9"])


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in root.rglob("*") if p.is_file()}


def test_file_discovery_with_token_writes_worker_files_with_modes(tmp_path: Path) -> None:
    ca = _ca_pem()
    root = tmp_path / "node"
    # --discovery-file is a path on the node, as with kubeadm; under --rootfs it is read below the root.
    df = discovery_file(tmp_path, ca=ca)
    (root / "tmp").mkdir(parents=True)
    (root / "tmp/discovery.conf").write_bytes(df.read_bytes())
    res = run(root, "--discovery-file", "/tmp/discovery.conf", "--tls-bootstrap-token", TOKEN)
    assert res.exit_code == 0, res.output
    files = tree(root)
    assert files["etc/kubernetes/bootstrap-kubelet.conf"] == 0o600
    assert files["etc/kubernetes/pki/ca.crt"] == 0o600
    assert files["var/lib/kubelet/config.yaml"] == 0o600
    assert files["var/lib/kubelet/kubeadm-flags.env"] == 0o644
    assert (root / "var/lib/kubelet").stat().st_mode & 0o777 == 0o700
    assert not any(f.endswith(".key") for f in files)  # a worker never holds a key from the cluster
    kc = yaml.safe_load((root / "etc/kubernetes/bootstrap-kubelet.conf").read_text())
    assert kc["current-context"] == "tls-bootstrap-token-user@kubernetes"
    assert kc["users"][0]["user"] == {"token": TOKEN}
    assert (root / "etc/kubernetes/pki/ca.crt").read_bytes() == ca
    assert "--rootfs: no service is started" in res.output or "start kubelet" in res.output
    again = run(root, "--discovery-file", "/tmp/discovery.conf", "--tls-bootstrap-token", TOKEN)
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output
    assert tree(root) == files


def test_discovery_file_with_credentials_is_the_bootstrap_kubeconfig(tmp_path: Path) -> None:
    root = tmp_path / "node"
    df = discovery_file(tmp_path, token=TOKEN, ca=_ca_pem())
    (root / "tmp").mkdir(parents=True)
    (root / "tmp/d.conf").write_bytes(df.read_bytes())
    res = run(root, "--discovery-file", "/tmp/d.conf")
    assert res.exit_code == 0, res.output
    assert (root / "etc/kubernetes/bootstrap-kubelet.conf").read_bytes() == df.read_bytes()


def test_refusals_write_nothing(tmp_path: Path) -> None:
    root = tmp_path / "node"
    (root / "tmp").mkdir(parents=True)
    (root / "tmp/noca.conf").write_bytes(discovery_file(tmp_path, token=TOKEN).read_bytes())
    (root / "tmp/nocreds.conf").write_bytes(discovery_file(tmp_path, ca=_ca_pem()).read_bytes())
    before = tree(root)
    cases = [
        (["--discovery-file", "/tmp/noca.conf"], "has no certificate-authority-data"),
        (["--discovery-file", "/tmp/nocreds.conf"], "has no credentials"),
        (["--discovery-file", "/tmp/missing.conf"], "no such file"),
        (["--discovery-file", "/tmp/nocreds.conf", "--token", "not-a-token"], "was not of the form"),
        (["10.0.0.1:6443", "--token", TOKEN, "--certificate-key", "00" * 32], "only be used with --control-plane"),
        (["--discovery-file", "/tmp/nocreds.conf", "--token", TOKEN, "--control-plane", "--certificate-key", "zz"],
         "error decoding certificate key"),
    ]
    for args, message in cases:
        res = run(root, *args)
        assert res.exit_code != 0, args
        assert message in res.output, (args, res.output)
        assert "Traceback" not in res.output
        assert tree(root) == before


def test_an_already_joined_node_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "node"
    (root / "etc/kubernetes").mkdir(parents=True)
    (root / "etc/kubernetes/kubelet.conf").write_text("x")
    (root / "tmp").mkdir()
    (root / "tmp/d.conf").write_bytes(discovery_file(tmp_path, token=TOKEN, ca=_ca_pem()).read_bytes())
    before = tree(root)
    res = run(root, "--discovery-file", "/tmp/d.conf")
    assert res.exit_code != 0
    assert "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists" in res.output
    assert tree(root) == before


def test_member_remove_is_retried_while_etcd_says_unhealthy_cluster() -> None:
    """Right after a join etcd refuses `member remove` ("unhealthy cluster") until the new member has
    been active a few seconds: retried. Any other error is returned at once."""
    from bootstrap.etcd.members import remove_member
    from bootstrap.transport.base import CommandResult

    answers = [CommandResult(1, "", "Error: etcdserver: unhealthy cluster")] * 2 + [CommandResult(0, "removed", "")]
    calls: list[str] = []

    def etcdctl(args: str) -> CommandResult:
        calls.append(args)
        return answers[len(calls) - 1]

    assert remove_member(etcdctl, "8e9e05c52164694d", interval=0).ok
    assert calls == ["member remove 8e9e05c52164694d"] * 3

    calls.clear()
    answers = [CommandResult(1, "", "Error: etcdserver: member not found")]
    assert not remove_member(etcdctl, "1", interval=0).ok and len(calls) == 1

    calls.clear()
    answers = [CommandResult(1, "", "Error: etcdserver: unhealthy cluster")] * 3
    assert not remove_member(etcdctl, "1", timeout=0, interval=0).ok and len(calls) == 1
