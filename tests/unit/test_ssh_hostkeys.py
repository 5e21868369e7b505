"""Host-key logic of the SSH transport: fingerprints, known_hosts matching, the verdict, TOFU appends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from bootstrap.errors import TransportError
from bootstrap.transport import batch, known_hosts, ssh
from bootstrap.transport.base import FileState
from bootstrap.transport.known_hosts import (
    check_host_key,
    fingerprint,
    host_entry_names,
    known_key_types,
    load_known_hosts,
    parse_known_hosts,
    trust_on_first_use,
)
from bootstrap.transport.ssh import SSHHost


def _ed25519_crypto() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    line = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return base64.b64decode(line.split()[1])


def _line(names: str, blob: bytes, marker: str = "") -> str:
    return f"{marker + ' ' if marker else ''}{names} {known_hosts.key_type_of(blob)} {base64.b64encode(blob).decode()}\n"


def _hashed(host: str) -> str:
    salt = os.urandom(20)
    mac = hmac.new(salt, host.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"


KEY_A = _ed25519_crypto()
KEY_B = _ed25519_crypto()


def test_fingerprint_is_openssh_sha256_format() -> None:
    # Known vector: `ssh-keygen -lf` on this public key prints this fingerprint.
    blob = base64.b64decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
    fp = fingerprint(blob)
    assert fp == "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
    assert fp.startswith("SHA256:") and not fp.endswith("=") and len(fp) == 7 + 43
    assert known_hosts.key_type_of(blob) == "ssh-ed25519"


def test_fingerprint_matches_paramiko_key() -> None:
    key = paramiko.RSAKey.generate(1024)
    assert fingerprint(key.asbytes()) == key.fingerprint  # paramiko >= 3 prints OpenSSH's format


def test_entry_names_port_22_and_other_ports() -> None:
    assert host_entry_names("cp1", "10.0.0.5") == ["cp1", "10.0.0.5"]
    assert host_entry_names("10.0.0.5", "10.0.0.5") == ["10.0.0.5"]
    assert host_entry_names("cp1", "10.0.0.5", 2222) == ["[cp1]:2222", "[10.0.0.5]:2222"]


@pytest.mark.parametrize(
    "entry",
    ["cp1", "10.0.0.5", "cp1,cp1.lab,10.0.0.5", "other,10.0.0.5", "10.0.0.*", "CP1"],
)
def test_lookup_by_name_or_address(entry: str) -> None:
    lines = parse_known_hosts(_line(entry, KEY_A), "kh")
    assert check_host_key(lines, host_entry_names("cp1", "10.0.0.5"), KEY_A).status == "ok"


def test_lookup_hashed_entries() -> None:
    text = _line(_hashed("10.0.0.5"), KEY_A) + _line(_hashed("[cp1]:2222"), KEY_B)
    lines = parse_known_hosts(text, "kh")
    assert check_host_key(lines, host_entry_names("cp1", "10.0.0.5"), KEY_A).status == "ok"
    assert check_host_key(lines, host_entry_names("cp1", "10.0.0.9", 2222), KEY_B).status == "ok"
    assert check_host_key(lines, host_entry_names("x", "10.0.0.6"), KEY_A).status == "unknown"


def test_non_standard_port_needs_bracketed_entry() -> None:
    plain = parse_known_hosts(_line("cp1,10.0.0.5", KEY_A), "kh")
    assert check_host_key(plain, host_entry_names("cp1", "10.0.0.5", 2222), KEY_A).status == "unknown"
    bracketed = parse_known_hosts(_line("[10.0.0.5]:2222", KEY_A), "kh")
    assert check_host_key(bracketed, host_entry_names("cp1", "10.0.0.5", 2222), KEY_A).status == "ok"
    assert check_host_key(bracketed, host_entry_names("cp1", "10.0.0.5"), KEY_A).status == "unknown"


def test_negated_pattern_vetoes_line() -> None:
    lines = parse_known_hosts(_line("10.0.0.*,!10.0.0.5", KEY_A), "kh")
    assert check_host_key(lines, ["10.0.0.5"], KEY_A).status == "unknown"
    assert check_host_key(lines, ["10.0.0.6"], KEY_A).status == "ok"


def test_unknown_vs_changed() -> None:
    names = host_entry_names("cp1", "10.0.0.5")
    assert check_host_key([], names, KEY_A).status == "unknown"
    other_host = parse_known_hosts(_line("cp2,10.0.0.6", KEY_B), "kh")
    assert check_host_key(other_host, names, KEY_A).status == "unknown"
    changed = parse_known_hosts("# comment\n\n" + _line("cp1", KEY_B), "/x/kh")
    v = check_host_key(changed, names, KEY_A)
    assert v.status == "changed" and v.line is not None
    assert (v.line.path, v.line.lineno, v.line.blob) == ("/x/kh", 3, KEY_B)


def test_match_in_any_file_wins_over_stale_entry(tmp_path: Path) -> None:
    inv, home = tmp_path / "inv_known_hosts", tmp_path / "home_known_hosts"
    inv.write_text(_line("cp1,10.0.0.5", KEY_A))
    home.write_text(_line("10.0.0.5", KEY_B))  # stale key from an older machine at that address
    lines = load_known_hosts([str(inv), str(home), str(tmp_path / "missing")])
    assert check_host_key(lines, host_entry_names("cp1", "10.0.0.5"), KEY_A).status == "ok"
    v = check_host_key(lines, host_entry_names("cp1", "10.0.0.5"), _ed25519_crypto())
    assert v.status == "changed" and v.line is not None and v.line.path == str(inv)  # first file first


def test_revoked_is_refused_and_cert_authority_ignored() -> None:
    lines = parse_known_hosts(_line("*", KEY_A, "@revoked") + _line("cp1", KEY_A), "kh")
    assert check_host_key(lines, ["cp1"], KEY_A).status == "revoked"
    ca = parse_known_hosts(_line("*", KEY_B, "@cert-authority"), "kh")
    assert check_host_key(ca, ["cp1"], KEY_A).status == "unknown"


def test_malformed_lines_skipped() -> None:
    text = "garbage\ncp1 ssh-ed25519 !!notbase64!!\n" + _line("cp1", KEY_A)
    lines = parse_known_hosts(text, "kh")
    assert [ln.lineno for ln in lines] == [3]


def test_known_key_types_in_file_order() -> None:
    rsa = paramiko.RSAKey.generate(1024).asbytes()
    lines = parse_known_hosts(_line("cp1", rsa) + _line("10.0.0.5", KEY_A) + _line("cp2", KEY_B), "kh")
    assert known_key_types(lines, ["cp1", "10.0.0.5"]) == ["ssh-rsa", "ssh-ed25519"]


def test_tofu_appends_atomically_and_keeps_mode(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("cp2 " + _line("x", KEY_B).split(" ", 1)[1].rstrip("\n"))  # no trailing newline
    kh.chmod(0o600)
    names = host_entry_names("cp1", "10.0.0.5")
    assert trust_on_first_use(str(kh), names, KEY_A).status == "ok"
    text = kh.read_text()
    assert text.endswith(_line("cp1,10.0.0.5", KEY_A)) and text.count("\n") == 2
    assert kh.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["known_hosts"]  # no temp files left
    lines = load_known_hosts([str(kh)])
    assert check_host_key(lines, names, KEY_A).status == "ok"
    # Idempotent, and never overwrites a different key.
    assert trust_on_first_use(str(kh), names, KEY_A).status == "ok"
    assert kh.read_text() == text
    assert trust_on_first_use(str(kh), names, KEY_B).status == "changed"
    assert kh.read_text() == text


def test_tofu_creates_file_and_port_entries(tmp_path: Path) -> None:
    kh = tmp_path / "sub" / "known_hosts"
    trust_on_first_use(str(kh), host_entry_names("cp1", "10.0.0.5", 2222), KEY_A)
    assert kh.read_text() == _line("[cp1]:2222,[10.0.0.5]:2222", KEY_A)


def test_tofu_parallel_hosts_all_recorded(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    keys = [_ed25519_crypto() for _ in range(16)]
    threads = [
        threading.Thread(target=trust_on_first_use, args=(str(kh), [f"h{i}", f"10.0.0.{i}"], k))
        for i, k in enumerate(keys)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = load_known_hosts([str(kh)])
    assert len(lines) == 16
    for i, k in enumerate(keys):
        assert check_host_key(lines, [f"h{i}"], k).status == "ok"


class _FakeKey:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def asbytes(self) -> bytes:
        return self.blob

    def get_name(self) -> str:
        return known_hosts.key_type_of(self.blob)


def _verify(host: SSHHost, blob: bytes) -> None:
    names = host_entry_names(host.name, host.address, host.port)
    ssh._verify_host_key(host, load_known_hosts(host.known_hosts), names, _FakeKey(blob))  # type: ignore[arg-type]


def test_verify_messages(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    host = SSHHost("cp1", "10.0.0.5", known_hosts=(str(kh),))
    with pytest.raises(TransportError) as e:
        _verify(host, KEY_A)
    assert e.value.message == f"host key for cp1 (10.0.0.5:22) is not known: ssh-ed25519 {fingerprint(KEY_A)}"
    assert e.value.hint is not None and "--trust-on-first-use" in e.value.hint and str(kh) in e.value.hint
    assert not kh.exists()

    kh.write_text(_line("cp1,10.0.0.5", KEY_B))
    for tofu in (False, True):
        with pytest.raises(TransportError) as e:
            _verify(SSHHost("cp1", "10.0.0.5", known_hosts=(str(kh),), tofu=tofu), KEY_A)
        assert e.value.message.startswith("host key for cp1 (10.0.0.5:22) has changed")
        assert fingerprint(KEY_A) in e.value.message and fingerprint(KEY_B) in e.value.message
        assert e.value.hint is not None and f"remove the old key from {kh}" in e.value.hint
    assert kh.read_text() == _line("cp1,10.0.0.5", KEY_B)

    tofu_host = SSHHost("cp2", "10.0.0.6", known_hosts=(str(kh), str(tmp_path / "other")), tofu=True)
    _verify(tofu_host, KEY_A)
    assert kh.read_text().endswith(_line("cp2,10.0.0.6", KEY_A))
    _verify(SSHHost("cp2", "10.0.0.6", known_hosts=(str(kh),)), KEY_A)  # now known without TOFU


def test_default_known_hosts_order() -> None:
    assert ssh.default_known_hosts("inv/known_hosts") == ("inv/known_hosts", "~/.ssh/known_hosts")
    assert SSHHost("a", "1.2.3.4").known_hosts == ("~/.ssh/known_hosts",)


def _bash(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["bash", "-s"], input=stdin, capture_output=True, check=False)


def test_write_batch_runs_atomically_with_local_bash(tmp_path: Path) -> None:
    """The batch protocol (script + tar on one stdin) run by a real local bash: same as on a host."""
    root = tmp_path / "r"
    (root / "exists").mkdir(parents=True)
    (root / "exists" / "old").write_bytes(b"old")
    weird = f"{root}/it's $HOME/a b\nc"
    files: list[batch.BatchFile] = [
        (f"{root}/exists/old", b"new\n", 0o640, None),
        (f"{root}/deep/er/bin", bytes(range(256)) * 50, 0o755, None),
        (weird, b"'quoted' $x `y`", 0o600, None),
        (f"{root}/deep/er/empty", b"", 0o4711, None),
    ]
    res = _bash(batch.write_batch(files, token="t0k"))
    assert res.returncode == 0, res.stderr
    for path, data, mode, _ in files:
        assert Path(path).read_bytes() == data
        assert Path(path).stat().st_mode & 0o7777 == mode
    assert (root / "deep").stat().st_mode & 0o777 == 0o755
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    # Read them back through the read protocol, with a missing path and a directory.
    paths = [f[0] for f in files] + [f"{root}/missing", f"{root}/deep"]
    out = _bash(batch.read_batch(paths).encode())
    assert out.returncode == 0, out.stderr
    got = batch.parse_read_batch(paths, out.stdout)
    assert got == {**{p: FileState(d, m) for p, d, m, _ in files}, f"{root}/missing": None, f"{root}/deep": None}


def test_write_batch_failure_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"keep")
    files: list[batch.BatchFile] = [
        (f"{tmp_path}/a", b"new", 0o644, None),
        (f"{tmp_path}/b", b"new", 0o644, "no-such-user-kb"),
    ]
    res = _bash(batch.write_batch(files))
    assert res.returncode == 1
    assert b"kbootstrap: cannot chown to no-such-user-kb" in res.stderr
    assert (tmp_path / "a").read_bytes() == b"keep" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_batch_paths_validated() -> None:
    with pytest.raises(ValueError):
        batch.read_batch(["relative"])
    with pytest.raises(ValueError):
        batch.write_batch([("/etc/dir/", b"", 0o644, None)])


def test_unreachable_is_one_line_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
    port = s.getsockname()[1]
    try:
        with pytest.raises(TransportError) as e:
            ssh.connect(SSHHost("n1", "127.0.0.1", port=port, known_hosts=(str(tmp_path / "kh"),)))
    finally:
        s.close()
    assert e.value.message == f"cannot reach n1 (127.0.0.1:{port}): connection refused"
    res = ssh.connect_all([SSHHost("n1", "127.0.0.1", port=port), SSHHost("n2", "no-such-host.invalid")])
    assert isinstance(res["n1"], TransportError) and isinstance(res["n2"], TransportError)
    assert "cannot resolve no-such-host.invalid" in res["n2"].message
