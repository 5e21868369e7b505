"""`kbootstrap init` at the CLI edge: one-line errors with exit 2 and nothing written, dry-run,
idempotence, --skip-phases, and --help on every command."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bootstrap import __version__
from bootstrap.cli import main

BASE = ["--apiserver-advertise-address", "192.0.2.10", "--node-name", "cp1"]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--control-plane-endpoint", "lb:notaport"], "--control-plane-endpoint: 'lb:notaport' is not HOST[:PORT]"),
        (["--apiserver-advertise-address", "10.0.0.300"], "is not an IP address"),
        (["--pod-network-cidr", "10.96.0.0/16"], "overlaps the service subnet"),
        (["--service-cidr", "10.96.0.0/33"], "is not a valid CIDR"),
        (["--skip-phases", "certs/nope"], "--skip-phases: unknown phase 'certs/nope'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    root = tmp_path / "root"
    code, _, err = run("init", "--rootfs", str(root), *BASE, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not root.exists()


def test_bad_config_file_names_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnett: x\n")
    code, _, err = run("init", "--rootfs", str(tmp_path / "r"), "--config", str(cfg), *BASE)
    assert code == 2 and "ClusterConfiguration.networking.podSubnett: unknown field" in err
    assert not (tmp_path / "r").exists()


def test_unknown_phase_command_is_a_usage_error() -> None:
    code, _, err = run("init", "phase", "certs", "nope")
    assert code == 2 and "No such command 'nope'" in err


def test_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code, out, _ = run("init", "--rootfs", str(root), "--dry-run", *BASE)
    assert code == 0
    assert "[certs] would create /etc/kubernetes/pki/ca.crt" in out
    assert "[control-plane/apiserver] would create /etc/kubernetes/manifests/kube-apiserver.yaml" in out
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code, out, _ = run("init", "--rootfs", str(root), *BASE)
    assert code == 0 and "created /etc/kubernetes/pki/ca.key" in out
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out, _ = run("init", "--rootfs", str(root), *BASE)
    assert code == 0
    assert "cp1: nothing to do" in out and "created" not in out and "updated" not in out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    # The API-server phases say plainly that a --rootfs render applies nothing.
    assert "[upload-config] skipped: 4 API objects: not a live host (--rootfs): no API server" in out


def test_a_changed_san_reissues_only_the_apiserver_cert(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run("init", "--rootfs", str(root), *BASE)
    ca = (root / "etc/kubernetes/pki/ca.crt").read_bytes()
    code, out, _ = run("init", "--rootfs", str(root), *BASE, "--apiserver-cert-extra-sans", "api.example.com")
    assert code == 0
    changed = [ln for ln in out.splitlines() if " updated " in ln]
    assert changed and all("apiserver." in ln for ln in changed), changed
    assert (root / "etc/kubernetes/pki/ca.crt").read_bytes() == ca


def test_skip_phases_and_rootfs_preflight(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code, out, _ = run("init", "--rootfs", str(root), *BASE, "--skip-phases", "control-plane,etcd,certs/sa", "-o", "json")
    assert code == 0
    import json

    report = json.loads(out)["hosts"]["cp1"]
    phases = {p["name"]: p for p in report["phases"]}
    assert phases["control-plane"]["skipped"] == "skipped by --skip-phases"
    assert phases["certs/sa"]["skipped"] == "skipped by --skip-phases"
    assert {c["status"] for c in phases["preflight"]["changes"]} == {"skipped"}
    assert not (root / "etc/kubernetes/manifests/kube-apiserver.yaml").exists()
    assert not (root / "etc/kubernetes/pki/sa.key").exists()
    assert (root / "etc/kubernetes/pki/apiserver.crt").exists()


def test_single_phase_commands(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code, _, err = run("init", "phase", "certs", "apiserver", "--rootfs", str(root), *BASE)
    assert code == 1 and "init phase certs ca" in err  # the CA must come first, and we say how
    assert run("init", "phase", "certs", "ca", "--rootfs", str(root), *BASE)[0] == 0
    assert run("init", "phase", "certs", "apiserver", "--rootfs", str(root), *BASE)[0] == 0
    assert sorted(p.name for p in (root / "etc/kubernetes/pki").iterdir()) == [
        "apiserver.crt", "apiserver.key", "ca.crt", "ca.key"]
    assert run("init", "phase", "kubeconfig", "all", "--rootfs", str(root), *BASE)[0] == 0
    assert run("init", "phase", "etcd", "local", "--rootfs", str(root), *BASE)[0] == 0
    assert (root / "etc/kubernetes/manifests/etcd.yaml").stat().st_mode & 0o777 == 0o600


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and __version__ in out


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def test_help_on_every_command() -> None:
    paths = _commands(main)
    assert len(paths) > 40
    for path in paths:
        code, out, _ = run(*path, "--help")
        assert code == 0, path
        assert "Usage:" in out


def test_reporting_commands_take_output_json() -> None:
    for path in [("init",), ("certs", "check-expiration"), ("bundle", "verify"), ("lab", "status")]:
        _, out, _ = run(*path, "--help")
        assert "-o, --output [text|json]" in out, path
