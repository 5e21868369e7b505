"""The SSH transport against real lab machines: host keys, scripts, atomic files, batches, sudo, failures."""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml

from bootstrap.errors import TransportError
from bootstrap.lab import ops
from bootstrap.lab.keys import write_pair
from bootstrap.lab.state import LabState
from bootstrap.transport import ssh
from bootstrap.transport.base import FileState
from bootstrap.transport.known_hosts import fingerprint
from bootstrap.transport.ssh import SSHHost, SSHTarget, connect, connect_all, run_on_all

pytestmark = pytest.mark.lab


def inventory_hosts(lab: LabState, **overrides: Any) -> list[SSHHost]:
    """SSHHosts from the lab's Kubespray inventory, verified against the inventory's known_hosts only."""
    inv = Path(lab.inventory_dir)
    data = yaml.safe_load((inv / "hosts.yaml").read_text())
    kw: dict[str, Any] = {"known_hosts": (str(inv / "known_hosts"),), "connect_timeout": 5.0, **overrides}
    return [
        SSHHost(
            name, v["ansible_host"], user=v.get("ansible_user", "root"), key_file=v["ansible_ssh_private_key_file"],
            **kw,
        )
        for name, v in data["all"]["hosts"].items()
    ]


def lab_key_blob(lab: LabState, machine: str) -> bytes:
    for line in (Path(lab.inventory_dir) / "known_hosts").read_text().splitlines():
        names, _, b64 = line.split()
        if machine in names.split(","):
            return base64.b64decode(b64)
    raise AssertionError(f"{machine} not in known_hosts")


class ChannelCounter:
    """Counts SSH channels (exec or SFTP) opened on a target's connection: one per round trip batch."""

    def __init__(self, target: SSHTarget) -> None:
        self.count = 0
        transport = target._transport
        original = transport.open_session

        def counting(*a: Any, **kw: Any) -> paramiko.Channel:
            self.count += 1
            return original(*a, **kw)

        transport.open_session = counting  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., LabState]) -> LabState:
    return module_lab_factory(1, 2)


@pytest.fixture(scope="module")
def hosts(lab: LabState) -> list[SSHHost]:
    return inventory_hosts(lab)


@pytest.fixture
def cp1(hosts: list[SSHHost]) -> Iterator[SSHTarget]:
    with connect(hosts[0]) as t:
        yield t


def test_connect_all_parallel_verified(hosts: list[SSHHost], monkeypatch: pytest.MonkeyPatch) -> None:
    # Parallel means every handshake is under way before the first one ends (no wall-clock bound:
    # speed lives in bench/).
    spans: dict[str, tuple[float, float]] = {}
    real_connect = ssh.connect

    def timed(h: SSHHost) -> SSHTarget:
        started = time.monotonic()
        try:
            return real_connect(h)
        finally:
            spans[h.name] = (started, time.monotonic())

    monkeypatch.setattr(ssh, "connect", timed)
    targets = connect_all(hosts, forks=8)
    try:
        assert list(targets) == [h.name for h in hosts]
        assert all(isinstance(t, SSHTarget) for t in targets.values()), targets
        live = {n: t for n, t in targets.items() if isinstance(t, SSHTarget)}
        results = run_on_all(live, lambda t: t.run("hostname").stdout.strip())
        assert results == {h.name: h.name for h in hosts}
        assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), spans
    finally:
        for t in targets.values():
            if isinstance(t, SSHTarget):
                t.close()


def test_run_script_with_quotes_vars_heredoc(cp1: SSHTarget) -> None:
    script = """set -e
name='it'"'"'s "quoted"'
x=$((6 * 7))
echo "$name $x \\$literal"
cat <<'EOF'
no $expansion here: 'single' "double"
EOF
cat <<EOF
expanded: $x
EOF
echo to-stderr >&2
"""
    res = cp1.run(script)
    assert res.exit_code == 0, res
    assert res.stdout == "it's \"quoted\" 42 $literal\nno $expansion here: 'single' \"double\"\nexpanded: 42\n"
    assert res.stderr == "to-stderr\n"
    assert cp1.run("exit 7").exit_code == 7
    res = cp1.run("false\necho after")  # no set -e: bash goes on, as it would locally
    assert (res.exit_code, res.stdout) == (0, "after\n")
    res = cp1.run("set -e\nfalse\necho never")
    assert (res.exit_code, res.stdout) == (1, "")


def test_run_large_output_both_streams_and_timeout(cp1: SSHTarget) -> None:
    # More than the SSH window on both streams at once: must not deadlock.
    res = cp1.run("head -c 3000000 /dev/zero | tr '\\0' a; head -c 3000000 /dev/zero | tr '\\0' b >&2")
    assert res.ok and res.stdout == "a" * 3_000_000 and res.stderr == "b" * 3_000_000
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="timed out after 1s"):
        cp1.run("sleep 30", timeout=1)
    assert time.monotonic() - t0 < 4
    assert cp1.run("echo still-usable").stdout == "still-usable\n"  # the connection survives


def test_write_atomic_with_mode_and_owner(cp1: SSHTarget) -> None:
    cp1.remove("/etc/kbt")
    cp1.write("/etc/kbt/sub/a.conf", b"one\n", 0o600)
    inode1 = cp1.run("stat -c %i /etc/kbt/sub/a.conf").stdout
    cp1.write("/etc/kbt/sub/a.conf", b"two\n", 0o640, owner="nobody:nogroup")
    assert cp1.read("/etc/kbt/sub/a.conf") == FileState(b"two\n", 0o640)
    facts = cp1.run("stat -c '%u:%g %a %i' /etc/kbt/sub/a.conf; stat -c %a /etc/kbt /etc/kbt/sub; ls -A /etc/kbt/sub")
    owner_mode, inode2, *rest = facts.stdout.split("\n")[0].rsplit(" ", 1) + facts.stdout.split("\n")[1:]
    assert owner_mode == "65534:65534 640"
    assert inode2 != inode1.strip()  # replaced by rename, not rewritten in place
    assert rest[:3] == ["755", "755", "a.conf"]  # parents 0755; no temp files left
    # Modes a umask would strip are honoured.
    cp1.write("/etc/kbt/x", b"", 0o666)
    assert cp1.read("/etc/kbt/x") == FileState(b"", 0o666)
    cp1.write("/etc/kbt/bin", bytes(range(256)) * 100, 0o755)
    assert cp1.read("/etc/kbt/bin") == FileState(bytes(range(256)) * 100, 0o755)
    assert cp1.list_dir("/etc/kbt") == ["bin", "sub", "x"]
    assert cp1.list_dir("/etc/kbt/x") is None and cp1.read("/etc/kbt") is None and cp1.read("/nope") is None
    cp1.mkdir("/etc/kbt/d1/d2", 0o700)
    cp1.mkdir("/etc/kbt/d1/d2", 0o755)  # an existing directory keeps its (hardened) mode
    cp1.chmod("/etc/kbt/x", 0o604)
    assert cp1.run("stat -c %a /etc/kbt/d1 /etc/kbt/d1/d2 /etc/kbt/x").stdout.split() == ["755", "700", "604"]
    cp1.remove("/etc/kbt")
    assert cp1.list_dir("/etc/kbt") is None


def test_write_failure_is_clear_and_leaves_nothing(cp1: SSHTarget) -> None:
    cp1.write("/etc/kbt2/f", b"old", 0o644)
    with pytest.raises(TransportError, match=r"writing 1 file\(s\) on .* failed: kbootstrap: cannot chown"):
        cp1.write("/etc/kbt2/f", b"new", 0o644, owner="no-such-user")
    assert cp1.read("/etc/kbt2/f") == FileState(b"old", 0o644)
    assert cp1.list_dir("/etc/kbt2") == ["f"]
    with pytest.raises(TransportError, match="/etc/kbt2/f/g"):
        cp1.write("/etc/kbt2/f/g", b"x", 0o644)  # parent is a file
    cp1.remove("/etc/kbt2")


def test_read_many_write_many_one_round_trip_each(cp1: SSHTarget) -> None:
    files: list[ssh.BatchFile] = [(f"/etc/kbt3/d{i % 4}/f{i}", f"content {i} 'q' $x\n".encode() * (i + 1), 0o600 + i % 2 * 0o40, None)
             for i in range(20)]
    files[3] = (files[3][0], files[3][1], 0o600, "nobody")
    counter = ChannelCounter(cp1)
    cp1.write_many(files)
    assert counter.count == 1
    paths = [f[0] for f in files] + ["/etc/kbt3/missing", "/etc/kbt3/d0"]
    got = cp1.read_many(paths)
    assert counter.count == 2
    assert got == {**{p: FileState(d, m) for p, d, m, _ in files}, "/etc/kbt3/missing": None, "/etc/kbt3/d0": None}
    assert cp1.run("stat -c %U /etc/kbt3/d3/f3").stdout == "nobody\n"
    assert cp1.run("find /etc/kbt3 -name '.*' | wc -l").stdout == "0\n"
    # Compare with one SFTP read per file: the batch must not be slower.
    t0 = time.monotonic()
    cp1.read_many(paths)
    batch = time.monotonic() - t0
    t0 = time.monotonic()
    for p in paths:
        cp1.read(p)
    singles = time.monotonic() - t0
    assert batch < singles * 2, (batch, singles)
    cp1.remove("/etc/kbt3")


def test_unknown_host_key_refused_with_fingerprint(lab: LabState, hosts: list[SSHHost], tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    h = hosts[0]
    with pytest.raises(TransportError) as e:
        connect(SSHHost(h.name, h.address, key_file=h.key_file, known_hosts=(str(empty),)))
    fp = fingerprint(lab_key_blob(lab, h.name))
    assert e.value.message == f"host key for {h.name} ({h.address}:22) is not known: ssh-ed25519 {fp}"
    assert "--trust-on-first-use" in (e.value.hint or "")
    assert empty.read_text() == ""


def test_changed_host_key_refused_even_with_tofu(lab: LabState, hosts: list[SSHHost], tmp_path: Path) -> None:
    h, other = hosts[0], hosts[1]
    wrong = lab_key_blob(lab, other.name)
    kh = tmp_path / "known_hosts"
    kh.write_text(f"{h.name},{h.address} ssh-ed25519 {base64.b64encode(wrong).decode()}\n")
    before = kh.read_text()
    for tofu in (False, True):
        with pytest.raises(TransportError) as e:
            connect(SSHHost(h.name, h.address, key_file=h.key_file, known_hosts=(str(kh),), tofu=tofu))
        assert e.value.message.startswith(f"host key for {h.name} ({h.address}:22) has changed")
        assert fingerprint(lab_key_blob(lab, h.name)) in e.value.message and fingerprint(wrong) in e.value.message
        assert f"remove the old key from {kh}" in (e.value.hint or "")
    res = connect_all([SSHHost(h.name, h.address, key_file=h.key_file, known_hosts=(str(kh),))], tofu=True)
    err = res[h.name]
    assert isinstance(err, TransportError) and "has changed" in err.message
    assert kh.read_text() == before


def test_tofu_adds_keys(lab: LabState, hosts: list[SSHHost], tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    plain = [SSHHost(h.name, h.address, key_file=h.key_file, known_hosts=(str(kh), str(tmp_path / "second")))
             for h in hosts]
    res = connect_all(plain, tofu=True)
    try:
        assert all(isinstance(t, SSHTarget) for t in res.values()), res
    finally:
        for t in res.values():
            if isinstance(t, SSHTarget):
                t.close()
    lines = sorted(kh.read_text().splitlines())
    assert lines == sorted(
        f"{h.name},{h.address} ssh-ed25519 {base64.b64encode(lab_key_blob(lab, h.name)).decode()}" for h in hosts
    )
    assert not (tmp_path / "second").exists()
    with connect(plain[0]) as t:  # now known: no TOFU needed
        assert t.run("true").ok


def test_auth_failure_names_user_and_key(hosts: list[SSHHost], tmp_path: Path) -> None:
    key = tmp_path / "other_key"
    write_pair(key, "not-authorized")
    h = hosts[0]
    with pytest.raises(TransportError) as e:
        connect(SSHHost(h.name, h.address, key_file=str(key), known_hosts=h.known_hosts))
    assert e.value.message == f"authentication failed for root@{h.name} ({h.address}:22) with {key}"
    with pytest.raises(TransportError, match=f"cannot load key file {tmp_path}/missing for root@"):
        connect(SSHHost(h.name, h.address, key_file=str(tmp_path / "missing"), known_hosts=h.known_hosts))


def test_unused_address_fails_fast(lab: LabState, hosts: list[SSHHost]) -> None:
    unused = lab.subnet.rsplit(".", 1)[0] + ".250"
    t0 = time.monotonic()
    res = connect_all([SSHHost("ghost", unused, connect_timeout=3, known_hosts=hosts[0].known_hosts), hosts[1]])
    assert time.monotonic() - t0 < 6
    err = res["ghost"]
    assert isinstance(err, TransportError)
    assert err.message in (f"cannot reach ghost ({unused}:22): no route to host",
                           f"cannot reach ghost ({unused}:22): timed out after 3s")
    assert isinstance(res[hosts[1].name], SSHTarget)
    res[hosts[1].name].close()  # type: ignore[union-attr]


def test_become_through_sudo(lab: LabState, hosts: list[SSHHost], tmp_path: Path) -> None:
    """The lab image (debootstrap minbase) has no sudo: install the host's Debian sudo .deb, make a user."""
    root = connect(hosts[2])
    try:
        if not root.run("command -v sudo").ok:
            dl = subprocess.run(["apt-get", "download", "sudo"], cwd=tmp_path, capture_output=True, text=True)
            debs = list(tmp_path.glob("sudo_*.deb"))
            if dl.returncode != 0 or not debs:
                pytest.skip(f"lab image has no sudo and `apt-get download sudo` failed: {dl.stderr.strip()[-200:]}")
            root.write("/root/sudo.deb", debs[0].read_bytes(), 0o644)
            res = root.run("dpkg -i /root/sudo.deb")
            if not res.ok:
                pytest.skip(f"lab image has no sudo and the host's sudo .deb does not install: {res.stdout[-300:]}")
        res = root.run("""set -e
id kbuser >/dev/null 2>&1 || useradd -m -s /bin/bash kbuser
echo 'kbuser ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/kbuser; chmod 440 /etc/sudoers.d/kbuser
id nopw >/dev/null 2>&1 || useradd -m -s /bin/bash nopw
for u in kbuser nopw; do
  install -d -m 700 -o $u -g $u /home/$u/.ssh
  install -m 600 -o $u -g $u /root/.ssh/authorized_keys /home/$u/.ssh/authorized_keys
done
""")
        assert res.ok, res
    finally:
        root.close()
    h = hosts[2]
    with connect(SSHHost(h.name, h.address, user="kbuser", become=True, key_file=h.key_file,
                         known_hosts=h.known_hosts)) as t:
        assert t.run("id -un; echo $SUDO_USER").stdout == "root\nkbuser\n"
        t.write("/etc/kbt4/b.conf", b"it's\n", 0o640, owner="kbuser:kbuser")
        t.write("/etc/kbt4/c.conf", b"c", 0o600)
        assert t.read("/etc/kbt4/b.conf") == FileState(b"it's\n", 0o640)
        assert t.run("stat -c '%U:%G %a' /etc/kbt4/b.conf /etc/kbt4").stdout == "kbuser:kbuser 640\nroot:root 755\n"
        assert t.list_dir("/etc/kbt4") == ["b.conf", "c.conf"]
        counter = ChannelCounter(t)
        t.write_many([(f"/etc/kbt4/m{i}", b"%d" % i, 0o600, None) for i in range(20)])
        got = t.read_many([f"/etc/kbt4/m{i}" for i in range(20)])
        assert counter.count == 2 and got["/etc/kbt4/m7"] == FileState(b"7", 0o600)
        t.mkdir("/etc/kbt4/d", 0o700)
        t.mkdir("/etc/kbt4/d", 0o755)
        assert t.run("stat -c %a /etc/kbt4/d").stdout == "700\n"
        t.chmod("/etc/kbt4/c.conf", 0o644)
        assert t.read("/etc/kbt4/c.conf") == FileState(b"c", 0o644)
        t.remove("/etc/kbt4")
        assert t.list_dir("/etc/kbt4") is None
    with pytest.raises(TransportError, match=r"nopw@.* cannot run sudo without a password"):
        connect(SSHHost(h.name, h.address, user="nopw", become=True, key_file=h.key_file, known_hosts=h.known_hosts))


# Destructive tests get their own one-machine lab.


def test_stopped_machine_and_connection_lost(lab_factory: Callable[..., LabState]) -> None:
    lab = lab_factory(1, 0)
    (host,) = inventory_hosts(lab)
    t = connect(host)
    try:
        t0 = time.monotonic()
        threading.Timer(1.0, ops.stop_machine, (lab.name, host.name), {"force": True}).start()
        with pytest.raises(TransportError) as e:
            t.run("echo started; sleep 60")
        assert e.value.message == f"connection to {host.name} ({host.address}:22) lost during a script"
        assert time.monotonic() - t0 < 15
        with pytest.raises(TransportError, match="lost during"):
            t.read("/etc/hostname")
    finally:
        t.close()
    t0 = time.monotonic()
    with pytest.raises(TransportError) as e:
        connect(host)
    assert time.monotonic() - t0 < 6
    assert e.value.message.startswith(f"cannot reach {host.name} ({host.address}:22): ")
    # Depending on how far the machine's teardown has got: refused, unreachable, or reset mid-handshake.
    assert e.value.message.split(": ", 1)[1].startswith(
        ("connection refused", "no route to host", "timed out after 5s", "SSH handshake failed")
    ), e.value.message


def test_silent_network_drop_detected(lab_factory: Callable[..., LabState], monkeypatch: pytest.MonkeyPatch) -> None:
    """No RST, no FIN: the machine just vanishes from the network. Keepalives must notice."""
    monkeypatch.setattr(ssh, "KEEPALIVE_INTERVAL", 1)
    monkeypatch.setattr(ssh, "DEAD_PEER_TIMEOUT", 4)
    lab = lab_factory(1, 0)
    (host,) = inventory_hosts(lab)
    t = connect(host)
    try:
        assert t.run("true").ok
        ops.block(lab.name, host.name)
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="lost during a script"):
            t.run("sleep 120")
        assert time.monotonic() - t0 < 20
    finally:
        t.close()
