"""REAL etcd started with exactly the command line of our rendered etcd static Pod manifest, using the
PKI our certs phase generates, inside a throwaway network namespace.

Flag/path mapping (kept honest):
- The manifest is rendered for Kubernetes v1.33, whose pinned etcd image is 3.5.21-0, so it carries the
  etcd 3.5 flags (--experimental-initial-corrupt-check, --experimental-watch-progress-notify-interval).
  Debian's etcd (3.4.x) knows every one of them, so no flag is dropped or renamed. (v1.34 renders the
  etcd 3.6 names --feature-gates=InitialCorruptCheck=true / --watch-progress-notify-interval, which a
  3.4 binary rejects; the unit tests pin those.)
- The only rewrite: absolute paths in flag values (the PKI dir and the data dir) get the tmp rootfs
  prefixed, because the files live there instead of in the node's real /.
- The advertise address is added to `lo` inside the namespace, so etcd binds exactly the URLs the
  manifest names (https://127.0.0.1:2379, https://ADV:2379/2380, http://127.0.0.1:2381).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from bootstrap.engine.context import RunContext
from bootstrap.engine.result import PhaseResult
from bootstrap.spec.load import build_spec
from bootstrap.transport.local import LocalTarget

ADV = "10.213.77.5"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for `ip netns`"),
    pytest.mark.skipif(not (shutil.which("ip") and shutil.which("etcd") and shutil.which("etcdctl")),
                       reason="needs iproute2, etcd and etcdctl (Debian etcd-server, etcd-client)"),
]


def _certs_phase():  # type: ignore[no-untyped-def]
    from bootstrap.phases import certs

    return certs.PHASE


def map_paths(command: list[str], root: Path) -> list[str]:
    """Prefix the rootfs to absolute paths in --flag=value (comma lists too); URLs are untouched."""
    out = [command[0]]
    for arg in command[1:]:
        name, _, value = arg.partition("=")
        parts = [f"{root}{p}" if p.startswith("/") else p for p in value.split(",")]
        out.append(f"{name}={','.join(parts)}")
    return out


def sh(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def etcd_node(tmp_path: Path):  # type: ignore[no-untyped-def]
    from bootstrap.phases import etcd as etcd_phase

    root = tmp_path / "rootfs"
    root.mkdir()
    spec = build_spec({"apiserver_advertise_address": ADV, "node_name": "cp1",
                       "kubernetes_version": "v1.33.0", "hardening": "cis"})
    for phase in (_certs_phase(), etcd_phase.PHASE):
        ctx = RunContext(spec, LocalTarget(root), phase=PhaseResult(phase.name))
        todo = [phase]
        while todo:  # a group runs its own work, or its children's
            p = todo.pop(0)
            if p.run is not None:
                p.run(ctx)
            else:
                todo[:0] = list(p.children)
    manifest = yaml.safe_load((root / "etc/kubernetes/manifests/etcd.yaml").read_text())
    command = manifest["spec"]["containers"][0]["command"]
    ns = f"kbt-{secrets.token_hex(4)}"
    assert sh("ip", "netns", "add", ns).returncode == 0
    proc = None
    log = (tmp_path / "etcd.log").open("w")
    try:
        assert sh("ip", "-n", ns, "link", "set", "lo", "up").returncode == 0
        assert sh("ip", "-n", ns, "addr", "add", f"{ADV}/32", "dev", "lo").returncode == 0
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *map_paths(command, root)],
                                stdout=log, stderr=subprocess.STDOUT)
        pki = root / "etc/kubernetes/pki"
        yield ns, pki, proc, tmp_path / "etcd.log", command
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
        sh("ip", "netns", "del", ns)


def etcdctl(ns: str, pki: Path, *args: str, cert: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", ns, "etcdctl", f"--endpoints=https://{ADV}:2379",
           f"--cacert={pki}/etcd/ca.crt", "--dial-timeout=3s", "--command-timeout=5s"]
    if cert:
        cmd += [f"--cert={pki}/{cert}.crt", f"--key={pki}/{cert}.key"]
    return sh(*cmd, *args)


def wait_healthy(ns: str, pki: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"etcd exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if etcdctl(ns, pki, "endpoint", "health", cert="etcd/healthcheck-client").returncode == 0:
            return
        time.sleep(0.5)
    pytest.fail(f"etcd not healthy in 30s:\n{log.read_text()[-3000:]}")


def test_real_etcd_with_our_manifest_flags_and_pki(etcd_node) -> None:  # type: ignore[no-untyped-def]
    ns, pki, proc, log, command = etcd_node
    assert "--experimental-initial-corrupt-check=true" in command
    assert "--client-cert-auth=true" in command
    wait_healthy(ns, pki, proc, log)

    health = etcdctl(ns, pki, "endpoint", "health", cert="etcd/healthcheck-client")
    assert health.returncode == 0 and "is healthy" in health.stdout + health.stderr

    put = etcdctl(ns, pki, "put", "/registry/kbt", "hello", cert="apiserver-etcd-client")
    assert put.returncode == 0 and "OK" in put.stdout, put.stderr
    get = etcdctl(ns, pki, "get", "/registry/kbt", "--print-value-only", cert="apiserver-etcd-client")
    assert get.returncode == 0 and get.stdout.strip() == "hello", get.stderr

    # A client cert from the *cluster* CA is not trusted by etcd (its own CA only).
    wrong_ca = etcdctl(ns, pki, "get", "/registry/kbt", cert="apiserver-kubelet-client")
    assert wrong_ca.returncode != 0
    assert "hello" not in wrong_ca.stdout
    # ...and it is etcd's TLS client auth that refused it, not some other failure.
    assert "failed to verify client certificate: x509: certificate signed by unknown authority" in log.read_text()

    # No client certificate at all: client-cert-auth refuses the handshake.
    anonymous = etcdctl(ns, pki, "get", "/registry/kbt")
    assert anonymous.returncode != 0
    assert "hello" not in anonymous.stdout
    assert "tls: client didn't provide a certificate" in log.read_text()

    # The metrics/health listener the probes use answers on plain HTTP on localhost:2381.
    probe = sh("ip", "netns", "exec", ns, "python3", "-c",
               "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:2381/health',timeout=5).read())")
    assert probe.returncode == 0 and '"health":"true"' in probe.stdout, probe.stderr
    assert proc.poll() is None
