"""Real TLS with the generated PKI: Python's ssl (OpenSSL) as apiserver and client, and kubectl
reading every kubeconfig. Nothing mocked."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kbtest import KUBECTL, KUBECTL_MISSING

from bootstrap.engine.context import RunContext
from bootstrap.phases.certs import PHASE as CERTS
from bootstrap.phases.kubeconfig import PHASE as KUBECONFIG
from bootstrap.render.kubeconfig import parse_kubeconfig
from bootstrap.spec.load import build_spec
from bootstrap.transport.local import LocalTarget

ALGORITHMS = ["RSA-2048", "ECDSA-P256"]


@pytest.fixture(scope="module", params=ALGORITHMS)
def rootfs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp(f"rootfs-{request.param}")
    spec = build_spec({"apiserver_advertise_address": "127.0.0.1", "node_name": "cp1",
                       "control_plane_endpoint": "lb.example.com:6443", "encryption_algorithm": request.param})
    ctx = RunContext(spec, LocalTarget(root), now=datetime.now(UTC))
    assert CERTS.run is not None and KUBECONFIG.run is not None
    CERTS.run(ctx)
    KUBECONFIG.run(ctx)
    return root


def pki(root: Path, name: str) -> str:
    return str(root / "etc/kubernetes/pki" / name)


class Server:
    """One-shot TLS echo server requiring a client cert from ca.crt, like kube-apiserver's --client-ca-file."""

    def __init__(self, root: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki(root, "apiserver.crt"), pki(root, "apiserver.key"))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(pki(root, "ca.crt"))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.error: Exception | None = None
        self.peer_cn: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(10)
        try:
            conn, _ = self.sock.accept()
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                cert = tls.getpeercert()
                self.peer_cn = dict(x[0] for x in cert["subject"])["commonName"] if cert else None
                tls.sendall(tls.recv(1024).upper())
        except Exception as exc:  # recorded for the test to assert on
            self.error = exc
        finally:
            self.sock.close()

    def join(self) -> None:
        self.thread.join(10)


def client_context(root: Path, tmp: Path, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    (tmp / "client.crt").write_bytes(cert_pem)
    (tmp / "client.key").write_bytes(key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki(root, "ca.crt"))
    ctx.load_cert_chain(str(tmp / "client.crt"), str(tmp / "client.key"))
    return ctx


def admin_credentials(root: Path) -> tuple[bytes, bytes]:
    view = parse_kubeconfig((root / "etc/kubernetes/admin.conf").read_bytes())
    assert view.client_cert_pem and view.client_key_pem
    return view.client_cert_pem, view.client_key_pem


def test_admin_client_talks_to_apiserver(rootfs: Path, tmp_path: Path) -> None:
    server = Server(rootfs)
    ctx = client_context(rootfs, tmp_path, *admin_credentials(rootfs))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
        tls.sendall(b"hello apiserver")
        assert tls.recv(1024) == b"HELLO APISERVER"
    server.join()
    assert server.error is None
    assert server.peer_cn == "kubernetes-admin"


def test_client_cert_from_etcd_ca_is_refused(rootfs: Path, tmp_path: Path) -> None:
    server = Server(rootfs)
    ctx = client_context(rootfs, tmp_path, Path(pki(rootfs, "apiserver-etcd-client.crt")).read_bytes(),
                         Path(pki(rootfs, "apiserver-etcd-client.key")).read_bytes())
    got = b""
    # With TLS 1.3 the client learns of the rejection only when it reads.
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
        tls.sendall(b"hello")
        got = tls.recv(1024)
        if not got:
            raise ConnectionError("closed by server")
    server.join()
    assert got == b""
    assert isinstance(server.error, ssl.SSLError)
    assert "certificate verify failed" in str(server.error) or "unknown ca" in str(server.error).lower()


def test_wrong_server_name_fails(rootfs: Path, tmp_path: Path) -> None:
    server = Server(rootfs)
    ctx = client_context(rootfs, tmp_path, *admin_credentials(rootfs))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match=r"Hostname mismatch|doesn't match"):
        ctx.wrap_socket(raw, server_hostname="wrong.example.com")
    server.join()


@pytest.mark.parametrize("name", ["etcd.cp1", "lb.example.com", "127.0.0.1"])
def test_other_names_on_the_apiserver_cert(rootfs: Path, tmp_path: Path, name: str) -> None:
    server = Server(rootfs)
    ctx = client_context(rootfs, tmp_path, *admin_credentials(rootfs))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        if name == "etcd.cp1":
            with pytest.raises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname=name)
        else:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                tls.sendall(b"x")
                assert tls.recv(10) == b"X"
    server.join()


@pytest.mark.skipif(KUBECTL is None, reason=KUBECTL_MISSING)
@pytest.mark.parametrize("conf", ["admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf",
                                  "scheduler.conf"])
def test_kubectl_reads_every_kubeconfig(rootfs: Path, conf: str) -> None:
    path = rootfs / "etc/kubernetes" / conf
    out = subprocess.run([str(KUBECTL), "config", "view", "--kubeconfig", str(path), "-o", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json
    doc = json.loads(out.stdout)
    view = parse_kubeconfig(path.read_bytes())
    assert doc["current-context"] == view.doc["current-context"]
    assert doc["clusters"][0]["cluster"]["server"] == view.server
    assert doc["users"][0]["name"] == view.user
    assert doc["users"][0]["user"]["client-certificate-data"] in ("DATA+OMITTED", "REDACTED")
