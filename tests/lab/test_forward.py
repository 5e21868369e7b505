"""A host firewall that drops forwarded traffic (Docker's FORWARD policy DROP, br_netfilter on) must not
cut lab machines apart. The 'host' here is a network namespace of our own with a bridge and two
'machines', so the real host's firewall is never touched."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bootstrap.lab import network
from bootstrap.lab.hostcmd import which

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or which("iptables") is None or which("ip") is None,
    reason="needs root, iproute2 and iptables (apt-get install iptables)",
)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


@contextlib.contextmanager
def fake_host() -> Iterator[tuple[str, str, str]]:
    """(host netns, machine a netns, machine b netns): a and b on bridge kbbr0 in the host netns."""
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        pytest.skip("br_netfilter is not loaded on this kernel")
    tag = secrets.token_hex(3)
    h, a, b = f"kbf{tag}h", f"kbf{tag}a", f"kbf{tag}b"
    try:
        for ns in (h, a, b):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", h, "link", "add", "kbbr0", "type", "bridge")
        sh("ip", "-n", h, "link", "set", "kbbr0", "up")
        for ns, ip in ((a, "10.77.0.2"), (b, "10.77.0.3")):
            sh("ip", "-n", h, "link", "add", f"v{ns[-1]}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", h, "link", "set", f"v{ns[-1]}", "master", "kbbr0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # What Docker does to a host: bridged frames through iptables, forwarding dropped.
        sh("ip", "netns", "exec", h, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        assert wait_reach(a), "the fake host's bridge never forwarded"
        sh("ip", "netns", "exec", h, "iptables", "-w", "5", "-P", "FORWARD", "DROP")
        yield h, a, b
    finally:
        for ns in (a, b, h):
            sh("ip", "netns", "delete", ns, check=False)


def wait_reach(a: str) -> bool:
    """Links take a moment to carry traffic after they are set up."""
    return any(reaches(a) for _ in range(10))


# A TCP connect to a closed port of b: refused (an RST came back) means reachable; a timeout, dropped.
PROBE = """
import socket, sys
try:
    socket.create_connection(("10.77.0.3", 9), timeout=1).close()
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    sys.exit(1)
"""


def reaches(a: str) -> bool:
    return sh("ip", "netns", "exec", a, sys.executable, "-c", PROBE, check=False).returncode == 0


def test_forward_drop_policy_gets_an_accept_for_the_bridge_and_loses_it_on_remove() -> None:
    with fake_host() as (h, a, _):
        assert not reaches(a), "the DROP policy should cut bridged traffic"
        assert network.allow_forward("kbbr0", netns=h) == "FORWARD"
        assert network.allow_forward("kbbr0", netns=h) == "FORWARD"  # idempotent: one rule
        assert len(network.forward_rules("kbbr0", netns=h)) == 1
        assert reaches(a)
        network.remove_forward("kbbr0", netns=h)
        assert network.forward_rules("kbbr0", netns=h) == []
        assert not reaches(a)


def test_docker_user_chain_is_used_when_docker_made_it() -> None:
    with fake_host() as (h, a, _):
        sh("ip", "netns", "exec", h, "iptables", "-w", "5", "-N", "DOCKER-USER")
        sh("ip", "netns", "exec", h, "iptables", "-w", "5", "-A", "FORWARD", "-j", "DOCKER-USER")
        assert not reaches(a)
        assert network.allow_forward("kbbr0", netns=h) == "DOCKER-USER"
        assert reaches(a)
        network.remove_forward("kbbr0", netns=h)
        assert not reaches(a)


def test_accepting_host_is_left_alone() -> None:
    with fake_host() as (h, a, _):
        sh("ip", "netns", "exec", h, "iptables", "-w", "5", "-P", "FORWARD", "ACCEPT")
        assert reaches(a)
        assert network.allow_forward("kbbr0", netns=h) is None
        assert network.forward_rules("kbbr0", netns=h) == []
