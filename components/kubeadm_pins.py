"""What kubeadm pins for its release: read from cmd/kubeadm/app/constants/constants.go of that release.

The etcd tag follows kubeadm's own EtcdSupportedVersion: the entry for the release's minor, or the
nearest end of the SupportedEtcdVersion map when the minor is outside it (v1.37 has no entry of its
own and uses the newest one). pause's version string is the one build/pause/Makefile compiles in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STRING_CONST = r'^\s*{name}\s*=\s*"([^"]+)"'
_ETCD_MAP_RE = re.compile(r"SupportedEtcdVersion\s*=\s*map\[uint8\]string\{(.*?)\}", re.S)
_ETCD_ENTRY_RE = re.compile(r'(\d+)\s*:\s*"([^"]+)"')
_PAUSE_TAG_RE = re.compile(r"^TAG\s*\?=\s*(\S+)", re.M)


@dataclass(frozen=True)
class KubeadmPins:
    kubernetes: str
    etcd_image_tag: str  # e.g. 3.7.0-0: the image tag; the etcd module version is v3.7.0
    coredns_image_tag: str  # e.g. v1.14.6, also the CoreDNS module version
    pause_image_tag: str  # e.g. 3.10.2

    @property
    def etcd_version(self) -> str:
        """The etcd module version the image tag names (the -N suffix is the image's own revision)."""
        return "v" + self.etcd_image_tag.split("-", 1)[0]

    @property
    def coredns_version(self) -> str:
        return self.coredns_image_tag

    def to_json(self) -> dict[str, str]:
        return {
            "kubernetes": self.kubernetes,
            "etcd_image_tag": self.etcd_image_tag,
            "coredns_image_tag": self.coredns_image_tag,
            "pause_image_tag": self.pause_image_tag,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> KubeadmPins:
        return cls(data["kubernetes"], data["etcd_image_tag"], data["coredns_image_tag"], data["pause_image_tag"])


def _string_const(source: str, name: str) -> str:
    m = re.search(_STRING_CONST.format(name=name), source, re.M)
    if not m:
        raise ValueError(f"constants.go has no {name}")
    return m[1]


def minor_of(kubernetes: str) -> int:
    m = re.match(r"^v1\.(\d+)\.\d+$", kubernetes)
    if not m:
        raise ValueError(f"{kubernetes!r} is not a v1.MINOR.PATCH release")
    return int(m[1])


def etcd_image_tag(source: str, kubernetes: str) -> str:
    """kubeadm's EtcdSupportedVersion for this release; DefaultEtcdVersion when the map is absent."""
    m = _ETCD_MAP_RE.search(source)
    if not m:
        return _string_const(source, "DefaultEtcdVersion")
    table = {int(k): v for k, v in _ETCD_ENTRY_RE.findall(m[1])}
    if not table:
        return _string_const(source, "DefaultEtcdVersion")
    minor = minor_of(kubernetes)
    if minor in table:
        return table[minor]
    return table[min(table)] if minor < min(table) else table[max(table)]


def pause_makefile_tag(makefile: str) -> str:
    m = _PAUSE_TAG_RE.search(makefile)
    if not m:
        raise ValueError("build/pause/Makefile has no TAG")
    return m[1]


def pause_version_string(pause_tag: str, kubernetes: str) -> str:
    """-DVERSION of build/pause/Makefile: v$(TAG)-$(REV), REV being `git describe --contains` of the
    source, which at the release tag is the tag itself (the module zip has no git, so we say it)."""
    return f"v{pause_tag}-{kubernetes}"


def read_pins(kubernetes: str, constants_go: str, pause_makefile: str) -> KubeadmPins:
    pause_tag = _string_const(constants_go, "PauseVersion")
    if pause_makefile_tag(pause_makefile) != pause_tag:
        raise ValueError(
            f"kubeadm pins pause {pause_tag} but build/pause/Makefile builds {pause_makefile_tag(pause_makefile)}"
        )
    return KubeadmPins(
        kubernetes=kubernetes,
        etcd_image_tag=etcd_image_tag(constants_go, kubernetes),
        coredns_image_tag=_string_const(constants_go, "CoreDNSVersion"),
        pause_image_tag=pause_tag,
    )
