"""Zone spread of control planes and etcd members, from a real inventory file."""

from __future__ import annotations

from pathlib import Path

from bootstrap.spec.inventory import load_inventory
from bootstrap.validate.zones import check_zones, quorum, suggest


def inventory(tmp_path: Path, zones: dict[str, str], workers: int = 1) -> Path:
    cps = list(zones)
    lines = ["all:", "  hosts:"]
    for i, name in enumerate(cps + [f"w{j}" for j in range(1, workers + 1)]):
        lines.append(f"    {name}:")
        lines.append(f"      ip: 10.0.0.{10 + i}")
        if zones.get(name):
            lines.append(f"      zone: {zones[name]}")
    lines += ["  children:", "    kube_control_plane:", "      hosts:"] + [f"        {c}:" for c in cps]
    lines += ["    etcd:", "      hosts:"] + [f"        {c}:" for c in cps]
    lines += ["    kube_node:", "      hosts:"] + [f"        w{j}:" for j in range(1, workers + 1)]
    p = tmp_path / "hosts.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_two_of_three_etcd_members_in_one_zone_is_warned(tmp_path: Path) -> None:
    inv = load_inventory(str(inventory(tmp_path, {"cp1": "a", "cp2": "a", "cp3": "b"})))
    report = check_zones(inv.hosts)
    assert report.etcd_by_zone == {"a": ["cp1", "cp2"], "b": ["cp3"]}
    assert len(report.warnings) == 1
    assert report.warnings[0] == ("losing zone a loses etcd quorum: it holds 2 of 3 members (cp1, cp2), "
                                  "1 would be left and 2 are needed")
    # Two zones can never carry 3 members through a zone failure: the suggestion says what it takes.
    assert "at least 3 zones" in report.suggestion


def test_one_member_per_zone_is_fine(tmp_path: Path) -> None:
    inv = load_inventory(str(inventory(tmp_path, {"cp1": "a", "cp2": "b", "cp3": "c"})))
    report = check_zones(inv.hosts)
    assert report.ok and report.suggestion == ""


def test_kbootstrap_zone_var_and_a_concrete_move(tmp_path: Path) -> None:
    # 5 members, zones a a a b c: losing a leaves 2 of 5 (< 3). One move fixes it.
    p = inventory(tmp_path, {"cp1": "", "cp2": "", "cp3": "", "cp4": "", "cp5": ""})
    text = p.read_text()
    for name, zone in zip(["cp1", "cp2", "cp3", "cp4", "cp5"], "aaabc", strict=True):
        text = text.replace(f"    {name}:\n      ip:", f"    {name}:\n      kbootstrap_zone: {zone}\n      ip:", 1)
    p.write_text(text)
    report = check_zones(load_inventory(str(p)).hosts)
    assert any("losing zone a" in w for w in report.warnings)
    assert report.suggestion.startswith("move cp3 from a to b")
    assert "a: 2, b: 2, c: 1" in report.suggestion


def test_no_zones_no_warning_and_partial_zones_warned(tmp_path: Path) -> None:
    assert check_zones(load_inventory(str(inventory(tmp_path, {"cp1": "", "cp2": "", "cp3": ""}))).hosts).ok
    report = check_zones(load_inventory(str(inventory(tmp_path, {"cp1": "a", "cp2": "b", "cp3": ""}))).hosts)
    assert any("no zone for cp3" in w for w in report.warnings)


def test_all_control_planes_in_one_zone(tmp_path: Path) -> None:
    report = check_zones(load_inventory(str(inventory(tmp_path, {"cp1": "a", "cp2": "a", "cp3": "a"}))).hosts)
    assert any("every control plane is in zone a" in w for w in report.warnings)


def test_quorum_and_small_clusters() -> None:
    assert [quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert "cannot survive any failure" in suggest({"a": ["cp1"]}, ["a", "b"])
