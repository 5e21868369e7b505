"""Lab operations the CLI and tests call: up, down, status, faults. Nothing here prints."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bootstrap.errors import KbootstrapError, RequirementError, UsageError
from bootstrap.lab import cgroup, dns, inventory, keys, machine, network, plan, registry, rootfs
from bootstrap.lab.hostcmd import need, need_root
from bootstrap.lab.state import (
    LabState,
    Machine,
    all_labs,
    global_lock,
    lab_dir,
    lab_lock,
    lab_lock_path,
    load,
    require,
)

T = TypeVar("T")
DEFAULT_PARALLEL = 8
DEFAULT_BOOT_TIMEOUT = 60.0


# Every machine's systemd takes inotify instances from the host's per-user budget (default 128):
# with a few labs up, new machines die at boot with "Too many open files".
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
MIN_INOTIFY_INSTANCES = 1024


def check_host(*, build: bool = False) -> None:
    need_root()
    for binary in ("systemd-nspawn", "ip", "dnsmasq", "mount"):
        need(binary)
    if build:
        need("debootstrap")
    registry.check_host()
    _raise_inotify_limit()


def _raise_inotify_limit() -> None:
    try:
        if int(INOTIFY_INSTANCES.read_text()) < MIN_INOTIFY_INSTANCES:
            INOTIFY_INSTANCES.write_text(f"{MIN_INOTIFY_INSTANCES}\n")
    except (OSError, ValueError) as exc:
        raise RequirementError(
            f"cannot raise fs.inotify.max_user_instances to {MIN_INOTIFY_INSTANCES}: {exc}",
            hint=f"sysctl -w fs.inotify.max_user_instances={MIN_INOTIFY_INSTANCES}",
        ) from None


def _pmap(fn: Callable[[T], Any], items: Iterable[T], parallel: int) -> list[Any]:
    """Run fn over items on at most `parallel` threads; re-raise the first failure after all finish."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(items)))) as pool:
        futures = [pool.submit(fn, it) for it in items]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [f.result() for f in futures]


def _pick_subnet(name: str, subnet: str | None) -> ipaddress.IPv4Network:
    used = network.used_networks()
    others = [ipaddress.IPv4Network(s.subnet) for s in all_labs() if s.name != name]
    if subnet is None:
        return plan.default_subnet(name, used + others)
    net = plan.parse_subnet(subnet)
    clash = plan.overlapping(net, used + others)
    if clash is not None:
        raise RequirementError(f"subnet {net} is already in use (overlaps {clash})", hint="pick another --subnet")
    return net


VIP_OFFSET = 250


def up(
    name: str,
    control_planes: int,
    workers: int,
    *,
    subnet: str | None = None,
    inventory_dir: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
    vip: bool = False,
) -> tuple[LabState, bool]:
    """Bring the lab up. Returns (state, created); created is False when it was already up."""
    plan.validate_name(name)
    plan.machine_names(name, control_planes, workers)  # validates the counts before any work
    check_host(build=not (rootfs.rootfs_path() / rootfs.COMPLETE_MARK).is_file())
    with lab_lock(name):
        st = load(name)
        # A state file without its bridge is what a host reboot leaves: rebuild rather than claim it is up.
        if st is not None and st.complete and network.link_exists(st.bridge):
            cps = sum(m.role == "control-plane" for m in st.machines)
            if (cps, len(st.machines) - cps) != (control_planes, workers):
                raise UsageError(
                    f"lab {name} is up with {cps} control planes and {len(st.machines) - cps} workers",
                    hint=f"kbootstrap lab down --name {name} first",
                )
            return st, False
        if st is not None or _leftovers(name):
            _teardown(name)  # an earlier `up` died midway
        root = rootfs.ensure_rootfs()
        inv = Path(inventory_dir or "inventories").absolute() / name
        with global_lock():
            net = _pick_subnet(name, subnet)
            gw, ips = plan.addresses(net, control_planes + workers)
            st = LabState(
                name=name, subnet=str(net), bridge=plan.bridge_name(name), bridge_ip=gw,
                domain=plan.domain(name), rootfs=str(root), inventory_dir=str(inv),
                machines=[
                    Machine(name=p.name, role=p.role, ip=p.ip, netns=p.netns, veth=p.veth)
                    for p in plan.plan_machines(name, control_planes, workers, ips)
                ],
                # The VIP sits high in the subnet, away from the machines' addresses.
                vip=str(net[min(VIP_OFFSET, net.num_addresses - 2)]) if vip else "",
            )
            # Saved before anything is made, so `down` always knows what to look for.
            st.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(st.dir, 0o755)
            st.save()
            network.create_bridge(st.bridge, st.bridge_ip, st.prefixlen)
            network.allow_forward(st.bridge)
        try:
            _build(st, parallel, boot_timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                _teardown(name)
            raise
        return st, True


def _build(st: LabState, parallel: int, boot_timeout: float) -> None:
    pub = keys.ensure_pair(st.key_path, f"kbootstrap-lab-{st.name}")
    dns.start(st)
    host_keys: dict[str, str] = {}

    def bring_up(m: Machine) -> None:
        network.create_machine_net(m.netns, m.veth, st.bridge, m.ip, st.prefixlen, st.bridge_ip)
        machine.mount_overlay(st, m)
        host_keys[m.name] = machine.prepare(st, m, pub)
        machine.boot(st, m, timeout=boot_timeout)

    # The registry (its storage built once per image set, which can take a while) comes up while
    # the machines boot.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reg = pool.submit(registry.bring_up, st)
        try:
            _pmap(bring_up, st.machines, parallel)
        finally:
            reg.result()
    inventory.write(st, host_keys)
    st.complete = True
    st.save()


def _leftovers(name: str) -> bool:
    return bool(
        lab_dir(name).exists()
        or network.link_exists(plan.bridge_name(name))
        or any(plan.netns_pattern(name).match(n) for n in network.list_netns())
    )


def down(name: str, *, parallel: int = 16) -> bool:
    """Tear the lab down; returns False when there was nothing to remove."""
    plan.validate_name(name)
    need_root()
    with lab_lock(name):
        found = load(name) is not None or _leftovers(name) or bool(machine.find_nspawn(_machine_re(name)))
        if found:
            _teardown(name, parallel=parallel)
        # Dropped while held: a command racing this one may lock a stale file, which only matters
        # for two commands on the same lab at once, and down has already won that race.
        with contextlib.suppress(FileNotFoundError):
            lab_lock_path(name).unlink()
        return found


def _machine_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}-(cp|w)[0-9]+$")


def _teardown(name: str, *, parallel: int = 16) -> None:
    """Remove everything of the lab that exists, whatever state it is in. Works from names alone."""
    st = None
    with contextlib.suppress(UsageError):
        st = load(name)
    d = lab_dir(name)
    # Machines: orderly shutdown in parallel, then kill what is left.
    by_machine: dict[str, list[int]] = {}
    for pid, m in machine.find_nspawn(_machine_re(name)).items():
        by_machine.setdefault(m, []).append(pid)
    _pmap(lambda kv: machine.kill_pids(kv[1], kv[0], timeout=10), list(by_machine.items()), parallel)
    dns.stop_dir(d)
    registry.stop_dir(d)
    network.remove_forward(plan.bridge_name(name))
    cgroup.remove(name)
    if machine.PROPAGATE_DIR.is_dir():
        for p in machine.PROPAGATE_DIR.iterdir():
            if _machine_re(name).match(p.name):
                shutil.rmtree(p, ignore_errors=True)
    # Overlays (deepest first), then namespaces, links, bridge.
    for mp in sorted(_mounts_under(d), key=lambda p: -len(str(p))):
        machine.unmount_overlay(mp)
    for ns in network.list_netns():
        if plan.netns_pattern(name).match(ns):
            network.delete_netns(ns)
    for link in network.list_links(plan.veth_prefix(name)):
        network.delete_link(link)
    network.delete_link(plan.bridge_name(name))
    if st is not None:
        inventory.remove(st)
    if _mounts_under(d):
        raise KbootstrapError(f"lab {name}: mounts under {d} would not go away", hint="umount them and rerun lab down")
    shutil.rmtree(d, ignore_errors=True)


def _mounts_under(d: Path) -> list[Path]:
    prefix = str(d) + "/"
    with open("/proc/self/mountinfo") as f:
        return [Path(line.split()[4]) for line in f if line.split()[4].startswith(prefix)]


# --- status ---------------------------------------------------------------------------------------

def status(name: str) -> dict[str, Any]:
    st = require(name)
    running = {m for m in machine.find_nspawn(_machine_re(name)).values()}
    ssh = _pmap(lambda m: m.name in running and machine.ssh_banner(m.ip, 0.5), st.machines, 16)
    return {
        "name": st.name,
        "subnet": st.subnet,
        "bridge": st.bridge,
        "gateway": st.bridge_ip,
        "domain": st.domain,
        "complete": st.complete,
        "dns": "running" if dns.is_running(st) else "stopped",
        "registry": registry.status(st),
        "inventory": st.inventory_dir,
        "key": str(st.key_path),
        "known_hosts": str(st.known_hosts_path),
        "machines": [
            {
                "name": m.name, "role": m.role, "ip": m.ip,
                "state": "running" if m.name in running else "stopped",
                "ssh": "up" if ok else "down", "dns": "present" if m.dns else "removed",
                "blocks": m.blocks,
            }
            for m, ok in zip(st.machines, ssh, strict=True)
        ],
    }


def list_labs() -> list[dict[str, Any]]:
    out = []
    for st in all_labs():
        running = set(machine.find_nspawn(_machine_re(st.name)).values())
        out.append({
            "name": st.name, "subnet": st.subnet, "machines": len(st.machines),
            "running": sum(m.name in running for m in st.machines), "complete": st.complete,
        })
    return out


# --- faults ---------------------------------------------------------------------------------------

def stop_machine(name: str, which: str, *, force: bool = False) -> tuple[Machine, bool]:
    need_root()
    with lab_lock(name):
        st = require(name)
        m = st.machine(which)
        was = machine.is_running(m)
        machine.stop(st, m, force=force)
        return m, was


def start_machine(name: str, which: str, *, boot_timeout: float = DEFAULT_BOOT_TIMEOUT) -> tuple[Machine, bool]:
    check_host()
    with lab_lock(name):
        st = require(name)
        m = st.machine(which)
        if machine.is_running(m):
            return m, False
        network.create_bridge(st.bridge, st.bridge_ip, st.prefixlen)
        network.allow_forward(st.bridge)
        if st.registry_storage and not registry.is_running(st):
            registry.start(st, Path(st.registry_storage))  # e.g. after the host rebooted
        network.create_machine_net(m.netns, m.veth, st.bridge, m.ip, st.prefixlen, st.bridge_ip)
        machine.mount_overlay(st, m)
        machine.boot(st, m, timeout=boot_timeout)
        return m, True


def block(name: str, which: str, *, port: int | None = None, peer: str | None = None) -> str:
    need_root()
    need("nft")
    with lab_lock(name):
        st = require(name)
        m = st.machine(which)
        peer_m = st.machine(peer) if peer else None
        if peer_m is not None and peer_m.name == m.name:
            raise UsageError("--peer must be another machine")
        network.block(m.netns, port, peer_m.ip if peer_m else None)
        what = ("port " + str(port) if port else "all traffic") + (f" with {peer_m.name}" if peer_m else "")
        m.blocks.append(what)
        st.save()
        return f"{m.name}: blocked {what}"


def heal(name: str, which: str) -> Machine:
    need_root()
    with lab_lock(name):
        st = require(name)
        m = st.machine(which)
        network.heal(m.netns)
        m.blocks = []
        st.save()
        return m


def dns_set(name: str, which: str, present: bool) -> Machine:
    need_root()
    with lab_lock(name):
        st = require(name)
        m = st.machine(which)
        m.dns = present
        st.save()
        dns.reload(st)
        return m

