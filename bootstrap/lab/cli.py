"""`kbootstrap lab`: real Debian machines on this host, booted by systemd-nspawn."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click

from bootstrap.commands.common import EdgeGroup
from bootstrap.lab import ops, remote
from bootstrap.lab.state import require

OUTPUT = click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)


class _LabGroup(EdgeGroup):
    """The shared CLI edge, so `python -m bootstrap.lab.cli` fails as cleanly as `kbootstrap lab`."""


def _emit(output: str, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if output == "json" else text)


@click.group(cls=_LabGroup)
def lab() -> None:
    """Real Debian machines (systemd, sshd, own network) on this host, for testing clusters."""


@lab.command()
@click.option("--name", required=True, help="Lab name: short, lowercase (machines are NAME-cp1.., NAME-w1..).")
@click.option("-c", "--control-planes", type=click.IntRange(1), default=1, show_default=True)
@click.option("-w", "--workers", type=click.IntRange(0), default=0, show_default=True)
@click.option("--subnet", help="IPv4 CIDR for the lab (default: a free /24 in 10.100-199.x derived from the name).")
@click.option("--inventory-dir", default="inventories", show_default=True, help="Writes DIR/NAME/hosts.yaml.")
@click.option("--parallel", type=click.IntRange(1, 128), default=ops.DEFAULT_PARALLEL, show_default=True,
              help="Machines booting at once.")
@click.option("--boot-timeout", type=click.FloatRange(5), default=ops.DEFAULT_BOOT_TIMEOUT, show_default=True,
              help="Seconds to wait for sshd per boot attempt (3 attempts).")
@click.option("--vip", is_flag=True, help="Give the control planes a keepalived VIP (.250 of the subnet) in the "
              "inventory (kbootstrap_vip): HAProxy on each, the cluster endpoint VIP:8443.")
@OUTPUT
def up(name: str, control_planes: int, workers: int, subnet: str | None, inventory_dir: str, parallel: int,
       boot_timeout: float, vip: bool, output: str) -> None:
    """Create and boot a lab, write its inventory. A no-op for a lab that is already up."""
    st, created = ops.up(name, control_planes, workers, subnet=subnet, inventory_dir=inventory_dir,
                         parallel=parallel, boot_timeout=boot_timeout, vip=vip)
    msg = (f"lab {name} is up: {len(st.machines)} machines on {st.subnet}, inventory {st.inventory_dir}/hosts.yaml"
           if created else f"lab {name} is already up ({len(st.machines)} machines on {st.subnet}); nothing to do")
    _emit(output, {"name": name, "created": created, "subnet": st.subnet, "inventory": st.inventory_dir}, msg)


@lab.command()
@click.option("--name", required=True)
def down(name: str) -> None:
    """Stop the lab's machines and remove everything it made (the cached rootfs stays)."""
    if ops.down(name):
        click.echo(f"lab {name} is down")
    else:
        click.echo(f"no lab named {name}; nothing to do")


@lab.command()
@click.option("--name", required=True)
@OUTPUT
def status(name: str, output: str) -> None:
    """Machines, roles, addresses and state of a lab."""
    s = ops.status(name)
    reg = s["registry"]
    rows = [f"lab {s['name']}  subnet {s['subnet']}  bridge {s['bridge']}  dns {s['dns']}  "
            f"registry {reg['url']} ({reg['state']}, {len(reg['images'])} images)"
            + ("" if s["complete"] else "  (incomplete: run lab down)")]
    rows.append(f"{'MACHINE':<20} {'ROLE':<14} {'IP':<16} {'STATE':<8} {'SSH':<5} {'DNS':<8} BLOCKS")
    for m in s["machines"]:
        rows.append(f"{m['name']:<20} {m['role']:<14} {m['ip']:<16} {m['state']:<8} {m['ssh']:<5} {m['dns']:<8} "
                    + ("; ".join(m["blocks"]) or "-"))
    _emit(output, s, "\n".join(rows))


@lab.command("list")
@OUTPUT
def list_(output: str) -> None:
    """Labs on this host."""
    labs = ops.list_labs()
    text = "\n".join(f"{x['name']:<20} {x['subnet']:<18} {x['running']}/{x['machines']} running" for x in labs)
    _emit(output, labs, text or "no labs")


@lab.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("machine")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, machine: str, command: tuple[str, ...]) -> None:
    """SSH to MACHINE as root (lab key, lab known_hosts). Runs COMMAND and exits with its code,
    or opens a shell. Stdin is forwarded, so `lab ssh dev cp1 bash -s < script.sh` works."""
    st = require(name)
    m = st.machine(machine)
    if not command:
        remote.interactive(st, m)
        return
    stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin
    try:
        stdin_ok = stdin is not None and stdin.fileno() >= 0
    except (OSError, ValueError):  # e.g. click's CliRunner gives a stdin without a descriptor
        stdin_ok = False
    cmd = command[0] if len(command) == 1 else shlex.join(command)
    sys.exit(remote.stream(st, m, cmd, stdin.buffer if stdin_ok and stdin is not None else None))


@lab.command()
@click.argument("name")
@click.argument("machine")
@click.option("--force", is_flag=True, help="Pull the plug: kill at once instead of an orderly shutdown.")
def stop(name: str, machine: str, force: bool) -> None:
    """Power a machine off (its disk and host key are kept)."""
    m, was = ops.stop_machine(name, machine, force=force)
    click.echo(f"{m.name} stopped" if was else f"{m.name} was not running")


@lab.command()
@click.argument("name")
@click.argument("machine")
@click.option("--boot-timeout", type=click.FloatRange(5), default=ops.DEFAULT_BOOT_TIMEOUT, show_default=True)
def start(name: str, machine: str, boot_timeout: float) -> None:
    """Boot a stopped machine and wait for sshd."""
    m, started = ops.start_machine(name, machine, boot_timeout=boot_timeout)
    click.echo(f"{m.name} is up" if started else f"{m.name} is already running")


@lab.command()
@click.argument("name")
@click.argument("machine")
@click.option("--port", type=click.IntRange(1, 65535), help="Only this TCP/UDP port (to and from the machine).")
@click.option("--peer", help="Only traffic with this other machine.")
def block(name: str, machine: str, port: int | None, peer: str | None) -> None:
    """Cut MACHINE off: from the whole lab network, one port, and/or one peer (both directions)."""
    click.echo(ops.block(name, machine, port=port, peer=peer))


@lab.command()
@click.argument("name")
@click.argument("machine")
def heal(name: str, machine: str) -> None:
    """Remove every block on MACHINE."""
    m = ops.heal(name, machine)
    click.echo(f"{m.name}: healed")


@lab.group()
def dns() -> None:
    """Edit the lab DNS (for fault tests)."""


@dns.command("remove")
@click.argument("name")
@click.argument("machine")
def dns_remove(name: str, machine: str) -> None:
    """Stop the lab DNS from answering for MACHINE."""
    m = ops.dns_set(name, machine, False)
    click.echo(f"{m.name} removed from the lab DNS")


@dns.command("add")
@click.argument("name")
@click.argument("machine")
def dns_add(name: str, machine: str) -> None:
    """Make the lab DNS answer for MACHINE again."""
    m = ops.dns_set(name, machine, True)
    click.echo(f"{m.name} added to the lab DNS")


if __name__ == "__main__":
    lab(prog_name="kbootstrap lab")
