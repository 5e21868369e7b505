"""Kubernetes versions we know, and what kubeadm pins for each minor (images, behaviour changes)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bootstrap.errors import ConfigError

# Newest release the ground-truth reference covers; the default target.
DEFAULT_KUBERNETES_VERSION = "v1.37.2"
MIN_MINOR = 27
MAX_MINOR = 37

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")

# kubeadm constants.go per minor (x.0 values): pause image, etcd image tag, CoreDNS tag.
_PINNED: dict[int, tuple[str, str, str]] = {
    27: ("3.9", "3.5.7-0", "v1.10.1"),
    28: ("3.9", "3.5.9-0", "v1.10.1"),
    29: ("3.9", "3.5.10-0", "v1.11.1"),
    30: ("3.9", "3.5.12-0", "v1.11.1"),
    31: ("3.10", "3.5.15-0", "v1.11.3"),
    32: ("3.10", "3.5.16-0", "v1.11.3"),
    33: ("3.10", "3.5.21-0", "v1.12.0"),
    34: ("3.10.1", "3.6.4-0", "v1.12.1"),
    35: ("3.10.1", "3.6.6-0", "v1.13.1"),  # kubernetes v1.35.4 constants.go
    36: ("3.10.2", "3.6.8-0", "v1.14.2"),  # v1.36.3
    37: ("3.10.2", "3.7.0-0", "v1.14.6"),  # v1.37.2
}


@dataclass(frozen=True, order=True)
class KubeVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str, path: str = "kubernetesVersion") -> KubeVersion:
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise ConfigError(
                path, f"{text!r} is not a Kubernetes version", hint="use vMAJOR.MINOR.PATCH, e.g. v1.34.0"
            )
        v = cls(int(m[1]), int(m[2]), int(m[3]))
        if v.major != 1 or not MIN_MINOR <= v.minor <= MAX_MINOR:
            raise ConfigError(path, f"{text} is not supported", hint=f"supported: v1.{MIN_MINOR}.x to v1.{MAX_MINOR}.x")
        return v

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    def at_least(self, minor: int) -> bool:
        return self.minor >= minor

    @property
    def pause_version(self) -> str:
        return _PINNED[self.minor][0]

    @property
    def etcd_version(self) -> str:
        return _PINNED[self.minor][1]

    @property
    def coredns_version(self) -> str:
        return _PINNED[self.minor][2]


# The newest patch release of each supported minor that kbootstrap is tested with (components/
# releases.py builds them, kubeadm's source of each was followed). kubeadm resolves `stable-1.37`
# from dl.k8s.io; we never go online: the labels resolve from this table.
NEWEST_PATCH: dict[int, str] = {35: "v1.35.4", 36: "v1.36.3", 37: "v1.37.2"}
# kubeadm's features.InitFeatureGates per release (ValidateFeatureGates refuses any other name);
# releases not listed are not checked.
KUBEADM_FEATURE_GATES: dict[int, frozenset[str]] = {
    35: frozenset({"PublicKeysECDSA", "RootlessControlPlane", "ControlPlaneKubeletLocalMode", "NodeLocalCRISocket"}),
    36: frozenset({"PublicKeysECDSA", "RootlessControlPlane", "NodeLocalCRISocket"}),
    37: frozenset({"RootlessControlPlane"}),
}
_LABEL_RE = re.compile(r"^(stable|latest)(?:-(\d+)(?:\.(\d+))?)?$")


def resolve_version(text: str, where: str = "kubernetesVersion") -> str:
    """A version or one of kubeadm's labels (stable, stable-1, stable-1.37, latest, latest-1.36)
    -> vMAJOR.MINOR.PATCH, offline. Anything else passes through to KubeVersion.parse's checks."""
    t = text.strip()
    m = _LABEL_RE.match(t)
    if m is None:
        if t.startswith(("ci/", "ci-cross/", "release/")):
            raise ConfigError(where, f"{t!r} is a CI build label", hint="use a release: vX.Y.Z or stable-1.37")
        return t
    major, minor = m[2], m[3]
    if major not in (None, "1"):
        raise ConfigError(where, f"{t!r}: there is no Kubernetes {major}.x", hint="use stable-1 or stable-1.37")
    if minor is None:
        return NEWEST_PATCH[max(NEWEST_PATCH)]
    if int(minor) not in NEWEST_PATCH:
        known = ", ".join(f"stable-1.{n}" for n in sorted(NEWEST_PATCH))
        raise ConfigError(where, f"{t!r} does not resolve offline: v1.{minor} is not in kbootstrap's release table",
                          hint=f"use an exact version (v1.{minor}.Z), or one of {known}")
    return NEWEST_PATCH[int(minor)]
