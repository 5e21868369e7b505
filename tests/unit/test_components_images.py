"""Image recipes' host side: Debian package closures and the iptables alternatives kube-proxy's image sets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components import debian
from components.images import (
    IPTABLES_ALTERNATIVES,
    KUBE_ROUTER_PACKAGES,
    NETFILTER_PACKAGES,
    ImagePlan,
    kubernetes_images,
)
from components.kubeadm_pins import KubeadmPins
from components.manifest import Artifact, Source


def test_debian_versions_as_image_tags() -> None:
    assert debian.image_tag("1:1.35.0-4+deb12u1+b1") == "1.35.0-4-deb12u1-b1"
    assert debian.image_tag("1.8.9-2") == "1.8.9-2"


def _installed(*names: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}\n", *names], capture_output=True, text=True)
    return proc.returncode == 0 and set(proc.stdout.split()) == {"installed"}


@pytest.mark.skipif(not _installed(*NETFILTER_PACKAGES), reason="needs Debian's iptables nftables ipset conntrack (make deps)")
def test_netfilter_closure_brings_the_libraries_and_the_alternative_targets() -> None:
    packages = {p.name for p in debian.closure(NETFILTER_PACKAGES)}
    assert {"libc6", "libxtables12", "libnftables1", "libipset13", "libnetfilter-conntrack3"} <= packages
    assert not packages & debian.NOT_AT_RUNTIME
    paths = {e.path for e in debian.entries(debian.closure(["iptables"]))}
    for link, target in IPTABLES_ALTERNATIVES.items():
        assert link.rsplit("/", 1)[0] + "/" + target in paths, f"{link} -> {target}: not shipped by iptables"
        assert link not in paths  # made by update-alternatives, not by the package
    assert not any(p.startswith("/usr/share/doc/") for p in paths)


def test_a_missing_package_is_named() -> None:
    with pytest.raises(Exception, match="not installed: kbootstrap-no-such-package"):
        debian.closure(["kbootstrap-no-such-package"])


def _plans() -> dict[str, ImagePlan]:
    """The image plans of a release from stand-in binaries (plans only name files; nothing is read)."""
    names = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kube-log-runner",
             "etcd", "etcdctl", "etcdutl", "coredns", "pause", "kube-router", "gobgp"]
    modules = {"kube-router": ("github.com/cloudnativelabs/kube-router/v2", "v2.1.0"),
               "gobgp": ("github.com/osrg/gobgp/v3", "v3.23.0")}
    binaries = {}
    for n in names:
        module, version = modules.get(n, ("k8s.io/kubernetes", "v1.37.2"))
        binaries[n] = Artifact(n, "binary", "v2.1.0" if n == "gobgp" else version,
                               Source(version, module=module, package=f"{module}/cmd/{n}"), "0" * 64, 1, f"bin/{n}")
    pins = KubeadmPins("v1.37.2", "3.7.0-0", "v1.14.6", "3.10.2")
    return {p.name: p for p in kubernetes_images("v1.37.2", pins, binaries, Path("/nonexistent"))}


@pytest.mark.skipif(not (_installed(*NETFILTER_PACKAGES, *KUBE_ROUTER_PACKAGES, "busybox-static")
                         and Path("/bin/busybox").exists()),
                    reason="needs Debian's netfilter tools, iproute2, kmod, ipvsadm and busybox-static (make deps)")
def test_kube_router_image_follows_kubespray_and_upstreams_dockerfile() -> None:
    plans = _plans()
    plan = plans["kube-router"]
    assert plan.reference == "docker.io/cloudnativelabs/kube-router:v2.1.0"  # Kubespray: repo + "v" + version
    assert plan.config.entrypoint == ("/usr/local/bin/kube-router",) and plan.config.working_dir == "/root"
    base, netfilter, tools, shell, top = plan.layers
    proxy = plans["kube-proxy"].layers
    assert (base, netfilter) == proxy[:2]  # the same layers as kube-proxy's: containerd stores them once
    assert {e.path for e in top} == {"/usr/local/bin/kube-router", "/usr/local/bin/gobgp", "/var/lib/gobgp"}
    netfilter_paths, tool_paths = {e.path for e in netfilter}, {e.path for e in tools}
    # what kube-router execs, by name on PATH: iptables/ip6tables(-save/-restore), ipset, conntrack, ip, modprobe
    for path in [*IPTABLES_ALTERNATIVES, "/usr/sbin/ipset", "/usr/sbin/conntrack"]:
        assert path in netfilter_paths, path
    for path in ["/bin/ip", "/sbin/modprobe", "/sbin/ipvsadm", "/etc/iproute2/rt_tables"]:  # rt_tables: kube-router appends to it
        assert path in tool_paths, path
    assert not netfilter_paths & tool_paths  # packages of the lower layer are not repeated
    # the DaemonSet's init container installs the CNI config with a shell; busybox shadows no real tool
    assert {e.path for e in shell} == {"/bin/busybox", "/bin/sh", "/bin/cp", "/bin/mv", "/bin/rm", "/bin/test", "/bin/["}
    assert not {e.path for e in shell} & (netfilter_paths | tool_paths)
    debs = [s.debian for s in plan.contents if s.debian]
    assert len(debs) == len(set(debs)) and {"iproute2", "kmod", "ipvsadm", "iptables", "libc6"} <= set(debs)
