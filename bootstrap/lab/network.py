"""Lab networking: one bridge on the host, one netns + veth per machine, nft faults inside the netns."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import subprocess
from pathlib import Path

from bootstrap.errors import KbootstrapError, RequirementError
from bootstrap.lab.hostcmd import need, run, which

NETNS_DIR = Path("/run/netns")
FAULT_TABLE = "kblab"


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination the host routes somewhere (all tables), to keep lab subnets clear of them."""
    out = json.loads(run(["ip", "-4", "-j", "route", "show", "table", "all"]).stdout or "[]")
    nets = []
    for r in out:
        dst = r.get("dst", "")
        if not dst or dst == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.IPv4Network(dst, strict=False))
    return nets


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def list_netns() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def list_links(prefix: str) -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix))


def create_bridge(bridge: str, ip: str, prefixlen: int) -> None:
    if not link_exists(bridge):
        run(["ip", "link", "add", "name", bridge, "type", "bridge"])
    run(["ip", "addr", "replace", f"{ip}/{prefixlen}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def create_machine_net(netns: str, veth: str, bridge: str, ip: str, prefixlen: int, gateway: str) -> None:
    """netns with eth0 (ip) wired to the bridge. The default route via the bridge leads nowhere, but
    kubeadm and etcd pick their address from the default route, so a machine needs one."""
    if not netns_exists(netns):
        run(["ip", "netns", "add", netns])
    if not link_exists(veth):
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", bridge, "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "addr", "replace", f"{ip}/{prefixlen}", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "route", "replace", "default", "via", gateway])


def delete_netns(netns: str) -> None:
    # Deleting the namespace destroys eth0 in it, which takes the host end of the veth with it.
    if netns_exists(netns):
        run(["ip", "netns", "delete", netns], check=False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(NETNS_DIR / netns)


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "delete", name], check=False)


# --- faults ---------------------------------------------------------------------------------------

def block_rules(port: int | None, peer_ip: str | None) -> tuple[list[str], list[str]]:
    """nft rule bodies for the input and output chains. Both directions are cut: a partition, not a
    one-way filter. Rules match every packet (no ct state), so open connections stall too."""
    peer_in = f"ip saddr {peer_ip} " if peer_ip else ""
    peer_out = f"ip daddr {peer_ip} " if peer_ip else ""
    if port is None:
        return [f'iifname "eth0" {peer_in}drop'], [f'oifname "eth0" {peer_out}drop']
    ins, outs = [], []
    for proto in ("tcp", "udp"):
        ins.append(f'iifname "eth0" {peer_in}{proto} dport {port} drop')
        outs.append(f'oifname "eth0" {peer_out}{proto} dport {port} drop')
    return ins, outs


def nft_script(port: int | None, peer_ip: str | None) -> str:
    ins, outs = block_rules(port, peer_ip)
    lines = [
        f"table inet {FAULT_TABLE} {{",
        "  chain input { type filter hook input priority -10; policy accept; }",
        "  chain output { type filter hook output priority -10; policy accept; }",
        "}",
    ]
    lines += [f"add rule inet {FAULT_TABLE} input {r}" for r in ins]
    lines += [f"add rule inet {FAULT_TABLE} output {r}" for r in outs]
    return "\n".join(lines) + "\n"


def block(netns: str, port: int | None, peer_ip: str | None) -> None:
    try:
        run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=nft_script(port, peer_ip))
    except RequirementError:
        raise
    except KbootstrapError as e:
        raise RequirementError(
            f"nft failed in {netns}: {e.message}", hint="apt-get install nftables; the kernel needs nf_tables"
        ) from None


def heal(netns: str) -> None:
    if netns_exists(netns):
        run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", FAULT_TABLE], check=False)


# --- a host firewall that drops forwarded traffic (Docker) ----------------------------------------
#
# With br_netfilter loaded and bridge-nf-call-iptables=1 (Docker sets both), frames bridged between
# two lab machines pass the host's iptables FORWARD chain, whose policy Docker sets to DROP: machines
# would reach the host (the bridge address: INPUT, which Docker leaves open) but not each other.
# As Docker documents for other bridges, the lab inserts an ACCEPT for traffic that stays on its
# bridge into DOCKER-USER (Docker evaluates it first and never rewrites it), or into FORWARD when
# there is a DROP policy without Docker. Each rule carries the bridge's name as a comment, so `down`
# finds and deletes exactly its own. Hosts whose FORWARD accepts everything are left untouched.

def forward_comment(bridge: str) -> str:
    return f"kbootstrap-lab:{bridge}"


def _iptables(args: list[str], netns: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns, need("iptables")] if netns else ["iptables"]
    return run([*prefix, "-w", "5", *args], check=check)


def forward_chain(netns: str | None = None) -> str | None:
    """Where the lab's ACCEPT goes on this host, or None when forwarded traffic is not dropped."""
    if which("iptables") is None:
        return None  # no iptables, no iptables rules that could drop (nft-only rulesets: see docs)
    if _iptables(["-S", "DOCKER-USER"], netns, check=False).returncode == 0:
        return "DOCKER-USER"
    policy = _iptables(["-S", "FORWARD"], netns, check=False).stdout.splitlines()
    return "FORWARD" if any(line.split()[:3] in (["-P", "FORWARD", "DROP"], ["-P", "FORWARD", "REJECT"])
                             for line in policy) else None


def forward_rules(bridge: str, netns: str | None = None) -> list[tuple[str, str]]:
    """(chain, rule spec as printed by -S) of this bridge's ACCEPT rules, in every chain they may be in."""
    out = []
    for chain in ("DOCKER-USER", "FORWARD"):
        cp = _iptables(["-S", chain], netns, check=False) if which("iptables") else None
        for line in (cp.stdout.splitlines() if cp is not None and cp.returncode == 0 else []):
            if f'--comment "{forward_comment(bridge)}"' in line or f"--comment {forward_comment(bridge)}" in line:
                out.append((chain, line))
    return out


def allow_forward(bridge: str, netns: str | None = None) -> str | None:
    """Let traffic between the bridge's ports through a host FORWARD chain that would drop it.
    Returns the chain used, or None when nothing was needed. Idempotent."""
    chain = forward_chain(netns)
    if chain is None:
        return None
    if not any(c == chain for c, _ in forward_rules(bridge, netns)):
        _iptables(["-I", chain, "1", "-i", bridge, "-o", bridge, "-m", "comment", "--comment",
                   forward_comment(bridge), "-j", "ACCEPT"], netns)
    return chain


def remove_forward(bridge: str, netns: str | None = None) -> None:
    for chain, line in forward_rules(bridge, netns):
        spec = shlex.split(line)
        if spec[:2] == ["-A", chain]:
            _iptables(["-D", chain, *spec[2:]], netns, check=False)
