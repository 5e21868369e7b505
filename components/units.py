"""Go build units: one Go module of ours per upstream source, and how upstream builds its binaries.

Each unit is its own Go module (components/modules/RELEASE/UNIT/go.mod) rather than one module for
the whole release, because Go's minimal version selection would otherwise raise every shared
dependency (gRPC, OpenTelemetry, x/sys ...) to the highest version any component asks for, and
kube-apiserver would no longer be built with the dependencies its release pins.

Flags follow each project's own Makefile or build script (cited per unit); where a commit hash is
stamped upstream we stamp nothing (module zips carry no VCS data), and say so in docs/components.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from components.kubeadm_pins import KubeadmPins, minor_of
from components.releases import FULL, OPTIONAL_UNITS, Release

BUILD_DATE = "{build_date}"  # replaced by the upstream module's publication time (reproducible)


@dataclass(frozen=True)
class BuildGroup:
    """Packages built by one `go build` (so shared packages compile once), with one set of flags."""

    packages: tuple[str, ...] | None  # None: every tool of the unit that no other group names
    cgo: bool = False
    tags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    buildmode: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "packages": list(self.packages) if self.packages is not None else None,
            "cgo": self.cgo,
            "tags": list(self.tags),
            "ldflags": list(self.ldflags),
            "buildmode": self.buildmode,
        }


@dataclass(frozen=True)
class GoUnit:
    name: str  # directory under components/modules/RELEASE/, and the stamp's name
    component: str  # what the manifest calls the source ("kubernetes", "etcd" ...)
    module: str  # the upstream module whose version names the unit
    version: str
    groups: tuple[BuildGroup, ...]
    tools: tuple[str, ...] = ()  # packages to build; empty: discover() lists them at pin time
    discover: Callable[[Path], list[str]] | None = None
    also: tuple[str, ...] = ()  # further upstream modules required at the same version
    local_replace_version: str | None = None  # what upstream's local-path replaces resolve to
    rename: Mapping[str, str] = field(default_factory=dict)  # go's executable name -> ours
    subdir: str = ""  # outputs go to bin/SUBDIR/ (the CNI plugins: bin/cni/)

    @property
    def upstream_modules(self) -> tuple[str, ...]:
        return (self.module, *self.also)

    def recipe_json(self) -> str:
        """Everything about how the unit is built except go.mod/go.sum (hashed with them for the stamp)."""
        return json.dumps({
            "name": self.name,
            "module": self.module,
            "version": self.version,
            "groups": [g.to_json() for g in self.groups],
            "rename": dict(sorted(self.rename.items())),
            "subdir": self.subdir,
        }, sort_keys=True)

    def output_name(self, package: str) -> str:
        base = default_exe_name(package)
        name = self.rename.get(base, base)
        return f"{self.subdir}/{name}" if self.subdir else name


def _is_version_element(s: str) -> bool:
    # cmd/go's isVersionElement: v2, v3 ... (not v0 or v1)
    return len(s) >= 2 and s[0] == "v" and s[1:].isdigit() and s not in ("v0", "v1")


def default_exe_name(package: str) -> str:
    """The file name `go build -o DIR PKG` gives PKG (cmd/go's DefaultExecName in module mode)."""
    parts = package.split("/")
    if len(parts) > 1 and _is_version_element(parts[-1]):
        return parts[-2]
    return parts[-1]


def group_packages(unit: GoUnit, tools: Sequence[str]) -> list[tuple[BuildGroup, list[str]]]:
    """Assign the unit's tools (its go.mod `tool` lines) to build groups; every tool is built once."""
    named = {p for g in unit.groups if g.packages for p in g.packages}
    missing = named - set(tools)
    if missing:
        raise ValueError(f"{unit.name}: go.mod has no tool line for {', '.join(sorted(missing))}")
    out = []
    for g in unit.groups:
        pkgs = list(g.packages) if g.packages is not None else sorted(set(tools) - named)
        if pkgs:
            out.append((g, pkgs))
    return out


def _k8s_version_ldflags(version: str) -> tuple[str, ...]:
    # hack/lib/version.sh: every key for both version packages. gitCommit/gitTreeState are only
    # stamped upstream when the git commit is known; the module zip has none, so they stay unset.
    major, minor = "1", str(minor_of(version))
    out: list[str] = []
    for key, value in (("gitVersion", version), ("gitMajor", major), ("gitMinor", minor), ("buildDate", BUILD_DATE)):
        for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
            out.append(f"-X {pkg}.{key}={value}")
    return tuple(out)


KUBE_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "kubeadm",
    "kubectl",
)
KUBE_LOG_RUNNER = "k8s.io/component-base/logs/kube-log-runner"  # /go-runner in the server images


def kubernetes_unit(release: Release) -> GoUnit:
    # hack/lib/golang.sh: -trimpath, ldflags "-s -w" plus the version keys. Upstream builds kubelet
    # with cgo; here every binary is CGO_ENABLED=0 (static), as the issue asks.
    v = release.kubernetes
    commands = KUBE_COMMANDS if release.scope == FULL else ("kubeadm",)
    tools = tuple(f"k8s.io/kubernetes/cmd/{c}" for c in commands)
    if release.scope == FULL:
        tools += (KUBE_LOG_RUNNER,)
    return GoUnit(
        name="kubernetes",
        component="kubernetes",
        module="k8s.io/kubernetes",
        version=v,
        tools=tools,
        local_replace_version="v0" + v.removeprefix("v1"),  # staging modules: v1.37.2 -> v0.37.2
        groups=(BuildGroup(packages=None, ldflags=("-s", "-w", *_k8s_version_ldflags(v))),),
    )


def etcd_unit(version: str) -> GoUnit:
    # scripts/build_lib.sh: CGO_ENABLED=0, -trimpath; GitSHA is stamped from git (none here).
    return GoUnit(
        name="etcd",
        component="etcd",
        module="go.etcd.io/etcd/server/v3",
        also=("go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/etcdutl/v3"),
        version=version,
        tools=("go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3", "go.etcd.io/etcd/etcdutl/v3"),
        groups=(BuildGroup(packages=None),),
        rename={"server": "etcd"},
    )


def coredns_unit(version: str) -> GoUnit:
    # Makefile: CGO_ENABLED=0, -tags grpcnotrace, -ldflags "-s -w -X coremain.GitCommit=..." (no git here).
    return GoUnit(
        name="coredns",
        component="coredns",
        module="github.com/coredns/coredns",
        version=version,
        tools=("github.com/coredns/coredns",),
        groups=(BuildGroup(packages=None, tags=("grpcnotrace",), ldflags=("-s", "-w")),),
    )


def cri_tools_unit(version: str) -> GoUnit:
    # Makefile: CGO_ENABLED=0, GOFLAGS=-trimpath, -X pkg/version.Version=VERSION without the v.
    return GoUnit(
        name="cri-tools",
        component="cri-tools",
        module="sigs.k8s.io/cri-tools",
        version=version,
        tools=("sigs.k8s.io/cri-tools/cmd/crictl",),
        groups=(BuildGroup(packages=None, ldflags=(f"-X sigs.k8s.io/cri-tools/pkg/version.Version={version[1:]}",)),),
    )


def cni_plugin_packages(module_dir: Path) -> list[str]:
    """build_linux.sh: every directory of plugins/{meta,main,ipam} except windows."""
    out = []
    for kind in ("meta", "main", "ipam"):
        for d in sorted((module_dir / "plugins" / kind).iterdir()):
            if d.is_dir() and d.name != "windows":
                out.append(f"github.com/containernetworking/plugins/plugins/{kind}/{d.name}")
    return out


def cni_plugins_unit(version: str) -> GoUnit:
    # build_linux.sh + the release workflow: CGO_ENABLED=0, -X buildversion.BuildVersion=VERSION.
    return GoUnit(
        name="cni-plugins",
        component="cni-plugins",
        module="github.com/containernetworking/plugins",
        version=version,
        discover=cni_plugin_packages,
        groups=(BuildGroup(
            packages=None,
            ldflags=(f"-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion={version}",),
        ),),
        subdir="cni",
    )


def containerd_unit(version: str) -> GoUnit:
    # Makefile with STATIC=1 (the static release): tags urfave_cli_no_docs osusergo netgo static_build,
    # -s -w, -X version.Version/Package; the shim: CGO_ENABLED=0 plus no_grpc. containerd and ctr are
    # CGO_ENABLED=0 here too, which leaves out only the btrfs snapshotter (cgo-only; overlayfs is the default).
    pkg = "github.com/containerd/containerd/v2"
    stamp = ("-s", "-w", f"-X {pkg}/version.Version={version}", f"-X {pkg}/version.Package={pkg}")
    tags = ("urfave_cli_no_docs", "osusergo", "netgo", "static_build")
    shim = f"{pkg}/cmd/containerd-shim-runc-v2"
    return GoUnit(
        name="containerd",
        component="containerd",
        module=pkg,
        version=version,
        tools=(f"{pkg}/cmd/containerd", f"{pkg}/cmd/ctr", shim),
        groups=(
            BuildGroup(packages=(f"{pkg}/cmd/containerd", f"{pkg}/cmd/ctr"), tags=tags, ldflags=stamp),
            BuildGroup(packages=(shim,), tags=(*tags, "no_grpc"), ldflags=stamp),
        ),
    )


def runc_unit(version: str) -> GoUnit:
    # Makefile `static` on amd64: CGO_ENABLED=1, -buildmode=pie, tags "seccomp urfave_cli_no_docs
    # netgo osusergo", -linkmode external -extldflags -static-pie: libseccomp (Debian's
    # libseccomp-dev libseccomp.a) is linked in, so the binary needs nothing on the node. The default
    # `libpathrs` tag is dropped: libpathrs is a Rust library Debian bookworm does not package, and
    # runc then uses its pure-Go path-safety code (github.com/cyphar/filepath-securejoin).
    return GoUnit(
        name="runc",
        component="runc",
        module="github.com/opencontainers/runc",
        version=version,
        tools=("github.com/opencontainers/runc",),
        groups=(BuildGroup(
            packages=None,
            cgo=True,
            buildmode="pie",
            tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
            ldflags=("-linkmode", "external", "-extldflags", "-static-pie"),
        ),),
    )


KUBE_ROUTER_MODULE = "github.com/cloudnativelabs/kube-router/v2"
GOBGP = "github.com/osrg/gobgp/v3/cmd/gobgp"


def kube_router_unit(version: str) -> GoUnit:
    # Makefile `kube-router`: CGO_ENABLED=0 go build -ldflags "-X pkg/version.Version=$(git describe
    # --tags) -X pkg/version.BuildDate=..." (no -s -w); `gobgp`: CGO_ENABLED=0 go install
    # github.com/osrg/gobgp/v3/cmd/gobgp@$(GOBGP_VERSION), the version kube-router's go.mod requires
    # (v3.23.0 for v2.1.0), so here it is a tool of the same module graph. The image carries both.
    stamp = f"{KUBE_ROUTER_MODULE}/pkg/version"
    return GoUnit(
        name="kube-router",
        component="kube-router",
        module=KUBE_ROUTER_MODULE,
        version=version,
        tools=(f"{KUBE_ROUTER_MODULE}/cmd/kube-router", GOBGP),
        # One `go build` for both (shared packages compile once); the -X flags name kube-router's
        # package only, which gobgp does not link, so gobgp is built as upstream builds it.
        groups=(BuildGroup(packages=None, ldflags=(f"-X {stamp}.Version={version}",
                                                   f"-X {stamp}.BuildDate={BUILD_DATE}")),),
    )


def flannel_unit(version: str) -> GoUnit:
    # Makefile dist/flanneld on amd64: CGO_ENABLED=1 (the UDP backend is cgo), -s -w,
    # -X pkg/version.Version, -extldflags -static. Upstream links against musl (Alpine); against
    # glibc a static binary must not use NSS, so netgo/osusergo select Go's resolver and user lookup.
    # images/Dockerfile also builds cmd/install_conf with CGO_ENABLED=0 (the install-cni init container).
    pkg = "github.com/flannel-io/flannel"
    return GoUnit(
        name="flannel",
        component="flannel",
        module=pkg,
        version=version,
        tools=(pkg, f"{pkg}/cmd/install_conf"),
        groups=(
            BuildGroup(
                packages=(pkg,),
                cgo=True,
                tags=("netgo", "osusergo"),
                ldflags=("-s", "-w", f"-X {pkg}/pkg/version.Version={version}", "-extldflags", "-static"),
            ),
            BuildGroup(packages=(f"{pkg}/cmd/install_conf",)),
        ),
        rename={"flannel": "flanneld", "install_conf": "install-conf"},
    )


def units_for(release: Release, pins: KubeadmPins | None, extra: Sequence[str] = ()) -> list[GoUnit]:
    """The release's units, small ones first (a refused module or a broken build shows up early);
    `extra` adds optional units (releases.OPTIONAL_UNITS) that are not built by default."""
    if release.scope != FULL:
        return [kubernetes_unit(release)]
    if pins is None:
        raise ValueError(f"{release.kubernetes}: a full release needs kubeadm's pins (etcd, CoreDNS)")
    assert release.cri_tools
    unknown = set(extra) - set(OPTIONAL_UNITS)
    if unknown:
        raise ValueError(f"unknown optional unit(s) {', '.join(sorted(unknown))} (known: {', '.join(OPTIONAL_UNITS)})")
    optional = [flannel_unit(release.flannel)] if "flannel" in extra else []
    return [
        runc_unit(release.runc),
        cri_tools_unit(release.cri_tools),
        cni_plugins_unit(release.cni_plugins),
        *optional,
        etcd_unit(pins.etcd_version),
        coredns_unit(pins.coredns_version),
        kube_router_unit(release.kube_router),
        containerd_unit(release.containerd),
        kubernetes_unit(release),
    ]
