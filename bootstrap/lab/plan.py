"""Pure naming and addressing for a lab: no I/O here, so it is unit-testable.

Every kernel object name is derived from the lab name alone, so `lab down` can find and remove what a
crashed `lab up` left behind even when the state file was never written.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bootstrap.errors import UsageError

# Lab names end up in hostnames, netns names and the DNS domain: keep them short and DNS-safe.
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
IFNAMSIZ = 15  # Linux interface names are at most 15 characters.
MAX_MACHINES = 240
# Default subnets are /24s taken from 10.100.0.0/14 .. 10.199.255.0; 10.0/16 and friends are
# common for VPNs and pod networks, so stay out of the low end.
_POOL_FIRST = int(ipaddress.IPv4Address("10.100.0.0")) >> 8
_POOL_SIZE = 100 * 256


@dataclass(frozen=True)
class MachinePlan:
    name: str  # e.g. dev-cp1
    role: str  # "control-plane" or "worker"
    ip: str
    netns: str
    veth: str  # host side of the veth pair; the machine side is eth0


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.endswith("-"):
        raise UsageError(
            f"invalid lab name {name!r}",
            hint="use 1-20 characters: lowercase letters, digits, '-', starting with a letter",
        )
    return name


def short_hash(name: str, n: int = 6) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:n]


def bridge_name(lab: str) -> str:
    return f"kb-{short_hash(lab, 8)}"


def veth_prefix(lab: str) -> str:
    return f"kv{short_hash(lab, 6)}"


def veth_name(lab: str, role: str, index: int) -> str:
    name = f"{veth_prefix(lab)}{'c' if role == 'control-plane' else 'w'}{index}"
    assert len(name) <= IFNAMSIZ, name
    return name


def netns_name(machine: str) -> str:
    return f"kb-{machine}"


def netns_pattern(lab: str) -> re.Pattern[str]:
    """Matches exactly this lab's namespaces (not those of a lab whose name has this one as prefix)."""
    return re.compile(rf"^kb-{re.escape(lab)}-(cp|w)[0-9]+$")


def domain(lab: str) -> str:
    return f"{lab}.lab"


def machine_names(lab: str, control_planes: int, workers: int) -> list[tuple[str, str, int]]:
    """(name, role, index) for each machine, control planes first."""
    if control_planes < 1:
        raise UsageError("a lab needs at least one control plane", hint="--control-planes 1")
    if workers < 0:
        raise UsageError("--workers cannot be negative")
    if control_planes + workers > MAX_MACHINES:
        raise UsageError(f"at most {MAX_MACHINES} machines per lab")
    out = [(f"{lab}-cp{i}", "control-plane", i) for i in range(1, control_planes + 1)]
    out += [(f"{lab}-w{i}", "worker", i) for i in range(1, workers + 1)]
    return out


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as e:
        raise UsageError(f"--subnet {text}: {e}", hint="give a network like 10.123.4.0/24") from None
    if net.prefixlen > 28:
        raise UsageError(f"--subnet {text} is too small", hint="use a /28 or larger")
    if not net.is_private:
        raise UsageError(f"--subnet {text} is not a private range", hint="use 10/8, 172.16/12 or 192.168/16")
    return net


def overlapping(net: ipaddress.IPv4Network, used: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network | None:
    for u in used:
        # A default route (0.0.0.0/0) overlaps everything and means nothing here.
        if u.prefixlen > 0 and net.overlaps(u):
            return u
    return None


def default_subnet(lab: str, used: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """First free /24 of the pool, starting at a slot derived from the lab name (stable per name)."""
    used = list(used)
    start = int(short_hash(lab, 8), 16) % _POOL_SIZE
    for k in range(_POOL_SIZE):
        slot = _POOL_FIRST + (start + k) % _POOL_SIZE
        net = ipaddress.IPv4Network((slot << 8, 24))
        if overlapping(net, used) is None:
            return net
    raise UsageError("no free /24 left in 10.100.0.0-10.199.255.0", hint="pass --subnet")


def addresses(net: ipaddress.IPv4Network, count: int) -> tuple[str, list[str]]:
    """Bridge (gateway) address and one address per machine: .1 is the bridge, machines from .10."""
    hosts = list(net.hosts())
    first = 9 if len(hosts) > 9 + count else 1
    if len(hosts) < first + count:
        raise UsageError(f"subnet {net} is too small for {count} machines", hint="use a larger --subnet")
    return str(hosts[0]), [str(h) for h in hosts[first : first + count]]


def plan_machines(lab: str, control_planes: int, workers: int, ips: list[str]) -> list[MachinePlan]:
    names = machine_names(lab, control_planes, workers)
    return [
        MachinePlan(name=n, role=r, ip=ip, netns=netns_name(n), veth=veth_name(lab, r, i))
        for (n, r, i), ip in zip(names, ips, strict=True)
    ]
