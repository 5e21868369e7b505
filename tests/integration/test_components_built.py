"""The real outputs of `make components`, for every full release in components/releases.py.

Needs the built components: with KBOOTSTRAP_STRICT=1 a missing build fails these tests, otherwise
they skip and say to run `make components`. The containerd test starts our own containerd (root)
on a private socket and runs our images with our runc.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.artifacts.components import Components, load_components
from bootstrap.errors import RequirementError
from components.images import CAP_NET_BIND_SERVICE
from components.releases import FULL, RELEASES

FULL_RELEASES = [r.kubernetes for r in RELEASES if r.scope == FULL]
KUBEADM_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "coredns", "pause")

pytestmark = pytest.mark.slow


def _require(release: str) -> Components:
    try:
        return load_components(release)
    except RequirementError as exc:
        if os.environ.get("KBOOTSTRAP_STRICT") == "1":
            pytest.fail(exc.one_line())
        pytest.skip(exc.one_line())


@pytest.fixture(params=FULL_RELEASES)
def built(request: pytest.FixtureRequest) -> Components:
    return _require(request.param)


def _run(*argv: str | Path, timeout: float = 120) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _output(*argv: str | Path, timeout: float = 120) -> str:
    """stdout and stderr together (kube-router prints its version on stderr)."""
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}"
    return proc.stdout


def has_interpreter(path: Path) -> bool:
    """True when an ELF64 executable names a dynamic loader (PT_INTERP): not static."""
    with path.open("rb") as f:
        ident = f.read(64)
        assert ident[:4] == b"\x7fELF" and ident[4] == 2 and ident[5] == 1, f"{path}: not a little-endian ELF64"
        phoff, = struct.unpack_from("<Q", ident, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", ident, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type,) = struct.unpack("<I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return True
    return False


def test_versions_are_stamped(built: Components) -> None:
    assert _run(built.binary("kubelet"), "--version").strip() == f"Kubernetes {built.release}"
    assert _run(built.binary("kubeadm"), "version", "-o", "short").strip() == built.release
    assert _run(built.binary("kubectl"), "version", "--client", "-o", "json").count(built.release) >= 1
    etcd = built.binaries["etcd"]
    assert f"etcd Version: {etcd.version.removeprefix('v')}" in _run(etcd.path, "--version")
    assert _run(built.binary("pause"), "-v").strip() == f"pause.c v{built.images['pause'].version}-{built.release}"
    assert built.binaries["containerd"].version in _run(built.binary("containerd"), "--version")
    assert f"runc version {built.binaries['runc'].version.removeprefix('v')}" in _run(built.binary("runc"), "--version")
    assert "libseccomp: 2." in _run(built.binary("runc"), "--version")  # built with the seccomp tag
    kube_router = built.binaries["kube-router"]
    assert f" version {kube_router.version}, built on " in _output(kube_router.path, "--version")
    gobgp = built.binaries["gobgp"].source.version  # the gobgp module kube-router's go.mod requires
    assert _run(built.binary("gobgp"), "--version").strip() == f"gobgp version {gobgp.removeprefix('v')}"


def test_kubeadm_images_are_all_built(built: Components) -> None:
    listed = _run(built.binary("kubeadm"), "config", "images", "list", "--kubernetes-version", built.release).split()
    assert len(listed) == len(KUBEADM_IMAGES)
    assert set(listed) <= set(built.image_refs), f"kubeadm wants {set(listed) - set(built.image_refs)}"


def test_every_binary_is_static(built: Components) -> None:
    dynamic = [name for name, a in built.binaries.items() if has_interpreter(a.path)]
    assert dynamic == []
    if shutil.which("file"):
        assert "statically linked" in _run("file", "-b", built.binary("pause"))


def test_manifest_hashes_match(built: Components) -> None:
    for artifact in [*built.binaries.values(), *built.images.values()]:
        artifact.verify()


@pytest.mark.skipif(not shutil.which("skopeo"), reason="needs skopeo (Debian skopeo)")
def test_skopeo_reads_every_archive(built: Components, tmp_path: Path) -> None:
    for name, image in built.images.items():
        raw = _run("skopeo", "inspect", "--raw", f"oci-archive:{image.path}")
        assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == image.digest, name
    # copying reads and verifies every blob, as a push to a registry would
    _run("skopeo", "copy", "--quiet", f"oci-archive:{built.images['pause'].path}", f"oci:{tmp_path / 'layout'}:pause")
    assert (tmp_path / "layout" / "index.json").is_file()


@pytest.mark.skipif(not (shutil.which("skopeo") and shutil.which("docker-registry")),
                    reason="needs skopeo and docker-registry (Debian skopeo, docker-registry)")
def test_skopeo_pushes_to_a_registry(built: Components, tmp_path: Path) -> None:
    """A push to a real registry (Debian's docker-registry on loopback): skopeo gzips the layers on the
    way, so the manifest digest changes; the config blob, and so the image ID, stays ours."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    registry = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert registry.poll() is None and time.monotonic() < deadline, "docker-registry did not start"
            time.sleep(0.1)
        for name in ("pause", "busybox", "kube-proxy"):
            archive = built.images[name]
            dest = f"docker://127.0.0.1:{port}/kbootstrap/{name}:{archive.version.replace(':', '-').replace('+', '-')}"
            _run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{archive.path}", dest)
            ours = json.loads(_run("skopeo", "inspect", "--raw", f"oci-archive:{archive.path}"))
            pushed = json.loads(_run("skopeo", "inspect", "--raw", "--tls-verify=false", dest))
            assert pushed["config"]["digest"] == ours["config"]["digest"], name
            assert len(pushed["layers"]) == len(ours["layers"]), name
    finally:
        registry.terminate()
        registry.wait(timeout=20)


@pytest.fixture
def containerd(built: Components, tmp_path: Path) -> Iterator[list[str]]:
    """Our containerd on a private socket (CRI off): yields the ctr command line for namespace k8s.io."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run containerd")
    state = Path("/run") / f"kbootstrap-test-containerd-{os.getpid()}"  # short: the socket path has a limit
    config = tmp_path / "config.toml"
    config.write_text(
        f'version = 3\nroot = "{tmp_path / "root"}"\nstate = "{state}"\n'
        f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{state}/sock"\n'
    )
    env = {**os.environ, "PATH": f"{built.directory / 'bin'}:{os.environ.get('PATH', '')}"}
    log = (tmp_path / "containerd.log").open("w")
    proc = subprocess.Popen([str(built.binary("containerd")), "--config", str(config)], stdout=log, stderr=log, env=env)
    ctr = [str(built.binary("ctr")), "--address", f"{state}/sock", "-n", "k8s.io"]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([*ctr, "version"], capture_output=True, check=False).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "containerd.log").read_text()
            time.sleep(0.2)
        yield ctr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(state, ignore_errors=True)


def test_ctr_imports_and_runs_the_images(built: Components, containerd: list[str], tmp_path: Path) -> None:
    for image in built.images.values():
        _run(*containerd, "images", "import", image.path)
    assert set(_run(*containerd, "images", "ls", "-q").split()) >= set(built.image_refs)
    # the unpacked kube-apiserver keeps the file capability the archive's PAX header carries
    unpacked = list((tmp_path / "root").glob("io.containerd.snapshotter.v1.*/snapshots/*/fs/usr/local/bin/kube-apiserver"))
    assert unpacked
    assert {os.getxattr(p, "security.capability") for p in unpacked} == {CAP_NET_BIND_SERVICE}
    runc = ["--runc-binary", str(built.binary("runc"))]
    busybox = built.images["busybox"].image
    assert busybox
    out = _run(*containerd, "run", "--rm", *runc, busybox, f"bb-{os.getpid()}", "sh", "-c",
               "which wget nslookup httpd nc && id -u")
    assert out.split() == ["/usr/bin/wget", "/usr/bin/nslookup", "/usr/sbin/httpd", "/usr/bin/nc", "0"]
    proxy = built.images["kube-proxy"].image
    assert proxy
    # kube-proxy's tools talk to the kernel, in the container's own (new, empty) network namespace:
    # privileged, as kube-proxy runs, but without --net-host nothing on the host is touched.
    for argv in (["/usr/sbin/iptables", "-w", "-L", "-n"], ["/usr/sbin/ip6tables-save"], ["/usr/sbin/iptables-legacy", "-V"],
                 ["/usr/sbin/nft", "list", "ruleset"], ["/usr/sbin/ipset", "list"], ["/usr/sbin/conntrack", "-L"]):
        _run(*containerd, "run", "--rm", "--privileged", *runc, proxy, f"kp-{os.getpid()}", *argv)
    version = _run(*containerd, "run", "--rm", *runc, proxy, f"kp-{os.getpid()}", "/usr/local/bin/kube-proxy", "--version")
    assert version.strip() == f"Kubernetes {built.release}"


def test_kube_router_image_runs_the_tools_it_execs(built: Components, containerd: list[str]) -> None:
    """kube-router execs its tools by name (PATH), as here: iptables/ip6tables with -save/-restore,
    ipset, ip (routes, policy rules), conntrack and modprobe; ipvsadm and gobgp are for inspection,
    as in upstream's image. Run privileged in the container's own network namespace."""
    archive = built.images["kube-router"]
    assert archive.image == f"docker.io/cloudnativelabs/kube-router:{archive.version}"
    _run(*containerd, "images", "import", archive.path)
    run = [*containerd, "run", "--rm", "--privileged", "--runc-binary", str(built.binary("runc")), archive.image,
           f"kr-{os.getpid()}"]
    assert f" version {archive.version}, built on " in _output(*run, "/usr/local/bin/kube-router", "--version")
    # (ctr adds its own warnings on stderr, e.g. about cgroup v1: lines are matched, not the whole output)
    assert any(line.startswith("ipset v7.") for line in _output(*run, "ipset", "--version").splitlines())
    assert "(nf_tables)" in _output(*run, "iptables", "--version")
    assert "(nf_tables)" in _output(*run, "ip6tables-restore", "--version")
    for argv in (["iptables", "-w", "-L", "-n"], ["iptables-save"], ["ip6tables-save"], ["ipset", "list"],
                 ["conntrack", "-L"], ["ip", "-V"], ["ip", "rule", "list"], ["ip", "route", "show", "table", "all"],
                 ["modprobe", "--version"], ["gobgp", "--version"]):
        _output(*run, *argv)
    # ipvsadm asks the kernel for IPVS even for --version; a kernel without ip_vs (as this machine's
    # may be) answers "Protocol not available", which still shows the binary and its libraries load.
    proc = subprocess.run([*run, "ipvsadm", "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 or "Can't initialize ipvs" in proc.stderr, proc.stderr
