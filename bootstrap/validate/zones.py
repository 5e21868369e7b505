"""Zone spread: would losing one zone lose etcd quorum, or every control plane?

Hosts carry a zone from the inventory (host var `zone` or `kbootstrap_zone`). etcd needs a majority
(n // 2 + 1) of its members; a zone holding more than n - quorum of them takes quorum down with it.
A pure function over the inventory's hosts: the plan prints its warnings and the suggestion.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NO_ZONE = "(no zone)"


@dataclass(frozen=True)
class ZoneReport:
    etcd_by_zone: dict[str, list[str]]
    control_planes_by_zone: dict[str, list[str]]
    warnings: list[str] = field(default_factory=list)
    suggestion: str = ""

    @property
    def ok(self) -> bool:
        return not self.warnings


def _by_zone(hosts: Iterable[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for h in hosts:
        out.setdefault(h.zone or NO_ZONE, []).append(h.name)
    return dict(sorted(out.items()))


def quorum(members: int) -> int:
    return members // 2 + 1


def check_zones(hosts: Iterable[Any]) -> ZoneReport:
    """hosts: InventoryHost-like (`name`, `zone`, `is_etcd`, `is_control_plane`). No zones at all: no warning."""
    hosts = list(hosts)
    etcd = _by_zone(h for h in hosts if h.is_etcd)
    cps = _by_zone(h for h in hosts if h.is_control_plane)
    zones_known = {h.zone for h in hosts if h.zone}
    if not zones_known:
        return ZoneReport(etcd, cps)
    warnings: list[str] = []
    n = sum(len(v) for v in etcd.values())
    if n:
        q = quorum(n)
        for zone, members in etcd.items():
            if n - len(members) < q:
                left = n - len(members)
                warnings.append(
                    f"losing zone {zone} loses etcd quorum: it holds {len(members)} of {n} members "
                    f"({', '.join(members)}), {left} would be left and {q} are needed"
                )
    if len(cps) == 1 and sum(len(v) for v in cps.values()) > 0:
        zone = next(iter(cps))
        warnings.append(f"every control plane is in zone {zone}: losing it loses the API")
    unzoned = [h.name for h in hosts if not h.zone and (h.is_etcd or h.is_control_plane)]
    if unzoned:
        warnings.append(f"no zone for {', '.join(unzoned)}: set the host var `zone` on every control plane "
                        "and etcd member, or the spread cannot be judged")
    return ZoneReport(etcd, cps, warnings, suggest(etcd, sorted(zones_known)) if warnings and n else "")


def suggest(etcd_by_zone: dict[str, list[str]], zones: list[str]) -> str:
    """A placement of the etcd members that survives any one zone, or what it would take."""
    members = [m for ms in etcd_by_zone.values() for m in ms]
    n, z = len(members), len(zones)
    if n < 3:
        return f"{n} etcd member(s) cannot survive any failure: run 3 (or 5), one zone each"
    limit = n - quorum(n)  # the most members one zone may hold
    if z == 0 or math.ceil(n / z) > limit:
        need = math.ceil(n / limit)
        return (f"{n} etcd members over {z} zone(s) cannot survive a zone failure: any zone may hold at most "
                f"{limit}, so at least {need} zones are needed (e.g. 3 members in 3 zones)")
    # Keep members where they are while their zone has room; move the rest to the emptiest zones.
    counts: Counter[str] = Counter({zz: 0 for zz in zones})
    placement: dict[str, str] = {}
    moves: list[str] = []
    overflow: list[tuple[str, str]] = []
    for zone, ms in etcd_by_zone.items():
        for m in ms:
            if zone in counts and counts[zone] < limit:
                counts[zone] += 1
                placement[m] = zone
            else:
                overflow.append((m, zone))
    for m, old in overflow:
        target = min(zones, key=lambda zz: (counts[zz], zz))
        counts[target] += 1
        placement[m] = target
        moves.append(f"{m} from {old} to {target}")
    spread = ", ".join(f"{zz}: {counts[zz]}" for zz in zones)
    return f"move {'; '.join(moves)} (etcd members per zone then {spread}; at most {limit} per zone)"
