"""Image recipes' host side: Debian package closures and the iptables alternatives kube-proxy's image sets."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components import debian
from components.images import IPTABLES_ALTERNATIVES, NETFILTER_PACKAGES


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
