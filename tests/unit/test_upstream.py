"""Binaries from upstream release URLs: the URL layout, pinned checksums, one download, refusal of
a bad file. A local HTTP server stands in for dl.k8s.io (this machine has no route out)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.artifacts.upstream import PINNED, fetch, release_url
from bootstrap.errors import ConfigError, TransportError

GOOD = b"\x7fELF a kubelet"


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    root = tmp_path / "mirror"
    (root / "v1.34.0/bin/linux/amd64").mkdir(parents=True)
    (root / "v1.34.0/bin/linux/amd64/kubelet").write_bytes(GOOD)
    (root / "v1.34.0/bin/linux/amd64/kubeadm").write_bytes(b"tampered")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()


PINS = {
    ("kubelet", "v1.34.0", "amd64"): hashlib.sha256(GOOD).hexdigest(),
    ("kubeadm", "v1.34.0", "amd64"): hashlib.sha256(b"the real kubeadm").hexdigest(),
}


def test_release_url_layout() -> None:
    assert release_url("kubelet", "v1.34.0", "amd64") == "https://dl.k8s.io/release/v1.34.0/bin/linux/amd64/kubelet"
    assert all(len(v) == 64 for v in PINNED.values())
    assert {k[0] for k in PINNED} == {"kubelet", "kubeadm", "kubectl"}


def test_download_once_verified_and_cached(tmp_path: Path, mirror: tuple[str, list[str]]) -> None:
    url, requests = mirror
    path, sha = fetch("kubelet", "v1.34.0", "amd64", base_url=url, cache=tmp_path / "cache", pins=PINS)
    assert path.read_bytes() == GOOD and sha == PINS[("kubelet", "v1.34.0", "amd64")]
    assert path.stat().st_mode & 0o777 == 0o755
    again, _ = fetch("kubelet", "v1.34.0", "amd64", base_url=url, cache=tmp_path / "cache", pins=PINS)
    assert again == path and len(requests) == 1  # the second call used the verified cache


def test_checksum_mismatch_is_refused_and_nothing_kept(tmp_path: Path, mirror: tuple[str, list[str]]) -> None:
    url, _ = mirror
    with pytest.raises(TransportError, match="checksum mismatch"):
        fetch("kubeadm", "v1.34.0", "amd64", base_url=url, cache=tmp_path / "cache", pins=PINS)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_unpinned_version_and_unreachable_site(tmp_path: Path, mirror: tuple[str, list[str]]) -> None:
    with pytest.raises(ConfigError, match=r"no pinned sha256 for kubelet v1\.33\.9"):
        fetch("kubelet", "v1.33.9", "amd64", cache=tmp_path, pins=PINS)
    with pytest.raises(TransportError, match="cannot download kubelet"):
        fetch("kubelet", "v1.34.0", "amd64", base_url="http://127.0.0.1:9", cache=tmp_path, pins=PINS)
