"""Pure lab logic: names, interface names, subnets, addresses."""

from __future__ import annotations

import ipaddress

import pytest

from bootstrap.errors import UsageError
from bootstrap.lab import plan
from bootstrap.lab.network import nft_script


@pytest.mark.parametrize("name", ["dev", "a", "t1a2b3c", "my-lab-2", "abcdefghijklmnopqrst"])
def test_valid_names(name: str) -> None:
    assert plan.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Dev", "1lab", "lab_1", "lab.x", "ends-", "abcdefghijklmnopqrstu", "a b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(UsageError):
        plan.validate_name(name)


def test_machine_names_show_roles() -> None:
    assert plan.machine_names("dev", 2, 2) == [
        ("dev-cp1", "control-plane", 1), ("dev-cp2", "control-plane", 2),
        ("dev-w1", "worker", 1), ("dev-w2", "worker", 2),
    ]
    with pytest.raises(UsageError):
        plan.machine_names("dev", 0, 3)
    with pytest.raises(UsageError):
        plan.machine_names("dev", 1, plan.MAX_MACHINES)


def test_interface_names_fit() -> None:
    name = "abcdefghijklmnopqrst"
    assert len(plan.bridge_name(name)) <= plan.IFNAMSIZ
    assert len(plan.veth_name(name, "worker", plan.MAX_MACHINES)) <= plan.IFNAMSIZ
    assert plan.bridge_name("a") != plan.bridge_name("b")
    assert plan.veth_name("a", "worker", 1) != plan.veth_name("a", "control-plane", 1)


def test_netns_pattern_is_exact() -> None:
    pat = plan.netns_pattern("a")
    assert pat.match("kb-a-cp1") and pat.match("kb-a-w12")
    assert not pat.match("kb-a-b-cp1") and not pat.match("kb-ab-cp1") and not pat.match("kb-a-cp1x")


def test_default_subnet_is_stable_private_24() -> None:
    net = plan.default_subnet("dev", [])
    assert net == plan.default_subnet("dev", [])
    assert net.prefixlen == 24 and net.is_private and net.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    assert plan.default_subnet("other", []) != net


def test_default_subnet_skips_used() -> None:
    net = plan.default_subnet("dev", [])
    used = [net, ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv4Network("192.0.2.0/24")]
    nxt = plan.default_subnet("dev", used)
    assert nxt != net and not nxt.overlaps(net)
    # a wide route covering the whole pool leaves nothing
    with pytest.raises(UsageError):
        plan.default_subnet("dev", [ipaddress.IPv4Network("10.0.0.0/8")])


def test_parse_subnet() -> None:
    assert str(plan.parse_subnet("10.1.2.0/24")) == "10.1.2.0/24"
    for bad in ("10.1.2.3/24", "8.8.8.0/24", "10.0.0.0/30", "nope"):
        with pytest.raises(UsageError):
            plan.parse_subnet(bad)


def test_overlapping() -> None:
    net = ipaddress.IPv4Network("10.1.2.0/24")
    assert plan.overlapping(net, [ipaddress.IPv4Network("10.1.0.0/16")]) == ipaddress.IPv4Network("10.1.0.0/16")
    assert plan.overlapping(net, [ipaddress.IPv4Network("0.0.0.0/0")]) is None


def test_addresses() -> None:
    gw, ips = plan.addresses(ipaddress.IPv4Network("10.1.2.0/24"), 3)
    assert gw == "10.1.2.1" and ips == ["10.1.2.10", "10.1.2.11", "10.1.2.12"]
    gw, ips = plan.addresses(ipaddress.IPv4Network("10.1.2.0/28"), 5)  # too small for .10+: pack from .2
    assert gw == "10.1.2.1" and ips[0] == "10.1.2.2"
    with pytest.raises(UsageError):
        plan.addresses(ipaddress.IPv4Network("10.1.2.0/28"), 14)
    _, ips = plan.addresses(ipaddress.IPv4Network("10.1.2.0/24"), 240)
    assert len(set(ips)) == 240 and "10.1.2.255" not in ips


def test_nft_script() -> None:
    s = nft_script(8080, None)
    assert 'iifname "eth0" tcp dport 8080 drop' in s and 'oifname "eth0" udp dport 8080 drop' in s
    s = nft_script(None, "10.1.2.11")
    assert 'iifname "eth0" ip saddr 10.1.2.11 drop' in s and 'oifname "eth0" ip daddr 10.1.2.11 drop' in s
    assert "dport" not in s
