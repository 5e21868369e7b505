"""The go.mod generator of the component build: upstream directives carried over, unit go.mod rendered,
tools grouped into `go build` invocations, and executable names as cmd/go gives them."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import gomod
from components.pin import MODULES_DIR, read_pins_file
from components.releases import RELEASES
from components.units import BuildGroup, GoUnit, default_exe_name, group_packages, units_for

K8S_GOMOD = """\
// This is a generated file. Do not edit directly.
module k8s.io/kubernetes

go 1.26.0

require (
	github.com/spf13/cobra v1.10.2
	k8s.io/api v0.0.0
	k8s.io/component-base v0.0.0
)

require k8s.io/kms v0.0.0 // indirect

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/component-base => ./staging/src/k8s.io/component-base
	k8s.io/kms => ./staging/src/k8s.io/kms
	k8s.io/sample-apiserver => ./staging/src/k8s.io/sample-apiserver // not required: a guard
)

replace github.com/old/thing v1.0.0 => github.com/new/thing v1.2.3
"""

ETCD_SERVER_GOMOD = """\
module go.etcd.io/etcd/server/v3

go 1.26

require (
	go.etcd.io/etcd/api/v3 v3.7.0
	go.etcd.io/etcd/client/v3 v3.7.0
)

replace (
	go.etcd.io/etcd/api/v3 => ../api
	go.etcd.io/etcd/client/v3 => ../client/v3
)

// Bad imports are sometimes causing attempts to pull that code.
replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_directives_are_read_from_blocks_single_lines_and_past_comments() -> None:
    assert gomod.module_path(K8S_GOMOD) == "k8s.io/kubernetes"
    assert gomod.go_directive(K8S_GOMOD) == "1.26.0"
    assert gomod.requires(K8S_GOMOD) == {
        "github.com/spf13/cobra": "v1.10.2",
        "k8s.io/api": "v0.0.0",
        "k8s.io/component-base": "v0.0.0",
        "k8s.io/kms": "v0.0.0",
    }
    reps = gomod.replaces(K8S_GOMOD)
    assert gomod.Replace("k8s.io/api", None, "./staging/src/k8s.io/api", None) in reps
    assert gomod.Replace("github.com/old/thing", "v1.0.0", "github.com/new/thing", "v1.2.3") in reps


def test_local_replaces_become_the_module_at_the_release_version() -> None:
    carried = gomod.carried_replaces([K8S_GOMOD], "v0.37.2")
    lines = [r.line() for r in carried]
    assert "k8s.io/api => k8s.io/api v0.37.2" in lines
    assert "k8s.io/kms => k8s.io/kms v0.37.2" in lines  # an indirect requirement is a requirement
    assert "github.com/old/thing v1.0.0 => github.com/new/thing v1.2.3" in lines  # non-local: verbatim
    assert not any("sample-apiserver" in line for line in lines)  # not required: left out


def test_guard_replaces_are_not_carried_and_modules_merge() -> None:
    etcdutl = ETCD_SERVER_GOMOD.replace("module go.etcd.io/etcd/server/v3", "module go.etcd.io/etcd/etcdutl/v3")
    carried = gomod.carried_replaces([ETCD_SERVER_GOMOD, etcdutl], "v3.7.0")
    assert [r.line() for r in carried] == [
        "go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.7.0",
        "go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v3.7.0",
    ]


def test_conflicting_upstream_replaces_are_refused() -> None:
    a = "module a\nrequire x v1.0.0\nreplace x => y v1.0.0\n"
    b = "module b\nrequire x v1.0.0\nreplace x => y v2.0.0\n"
    with pytest.raises(ValueError, match="conflicting"):
        gomod.carried_replaces([a, b], "v1.0.0")


def test_rendered_gomod_reads_back() -> None:
    replace = gomod.carried_replaces([K8S_GOMOD], "v0.37.2")
    text = gomod.render(
        module="kbootstrap.local/components/v1.37.2/kubernetes",
        go_version="1.26.0",
        require={"k8s.io/kubernetes": "v1.37.2"},
        replace=replace,
        tool=["k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kubeadm"],
    )
    assert gomod.module_path(text) == "kbootstrap.local/components/v1.37.2/kubernetes"
    assert gomod.requires(text) == {"k8s.io/kubernetes": "v1.37.2"}
    assert gomod.replaces(text) == replace
    assert gomod.tools(text) == ["k8s.io/kubernetes/cmd/kubeadm", "k8s.io/kubernetes/cmd/kubelet"]


def test_module_of_a_package_follows_replaces() -> None:
    text = "module m\nrequire (\n\tk8s.io/kubernetes v1.37.2\n\tk8s.io/component-base v0.0.0\n)\n" \
           "replace k8s.io/component-base => k8s.io/component-base v0.37.2\n"
    assert gomod.module_of("k8s.io/kubernetes/cmd/kubelet", text) == ("k8s.io/kubernetes", "v1.37.2")
    assert gomod.module_of("k8s.io/component-base/logs/kube-log-runner", text) == ("k8s.io/component-base", "v0.37.2")
    with pytest.raises(ValueError):
        gomod.module_of("example.com/other", text)


@pytest.mark.parametrize(("package", "name"), [
    ("k8s.io/kubernetes/cmd/kubelet", "kubelet"),
    ("go.etcd.io/etcd/server/v3", "server"),  # a major-version suffix is skipped, as cmd/go does
    ("go.etcd.io/etcd/etcdctl/v3", "etcdctl"),
    ("github.com/coredns/coredns", "coredns"),
    ("example.com/tool/v1", "v1"),  # v0/v1 are not version elements
])
def test_default_exe_name(package: str, name: str) -> None:
    assert default_exe_name(package) == name


def test_tools_are_grouped_once_each() -> None:
    unit = GoUnit(
        name="u", component="u", module="example.com/m", version="v1.0.0",
        groups=(BuildGroup(packages=("example.com/m/cmd/shim",), tags=("no_grpc",)), BuildGroup(packages=None)),
    )
    groups = group_packages(unit, ["example.com/m/cmd/a", "example.com/m/cmd/shim", "example.com/m/cmd/b"])
    assert [(g.tags, pkgs) for g, pkgs in groups] == [
        (("no_grpc",), ["example.com/m/cmd/shim"]),
        ((), ["example.com/m/cmd/a", "example.com/m/cmd/b"]),
    ]
    with pytest.raises(ValueError, match="no tool line"):
        group_packages(unit, ["example.com/m/cmd/a"])


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r.kubernetes)
def test_every_release_in_the_table_is_pinned(release) -> None:  # type: ignore[no-untyped-def]
    """components/modules/RELEASE/ matches the table: every unit has go.mod + go.sum pinning its version."""
    pins = read_pins_file(release)
    for unit in units_for(release, pins):
        d: Path = MODULES_DIR / release.kubernetes / unit.name
        text = (d / "go.mod").read_text()
        assert (d / "go.sum").stat().st_size > 0
        required = gomod.requires(text)
        for m in unit.upstream_modules:
            assert required[m] == unit.version, f"{d}/go.mod: run make components-pin RELEASE={release.kubernetes}"
        named = {p for g in unit.groups if g.packages for p in g.packages}
        assert named <= set(gomod.tools(text))


def test_a_kubeadm_only_release_builds_kubeadm_alone() -> None:
    from components.releases import KUBEADM_ONLY, Release

    (unit,) = units_for(Release("v1.35.4", scope=KUBEADM_ONLY), None)
    assert unit.tools == ("k8s.io/kubernetes/cmd/kubeadm",)
    assert unit.local_replace_version == "v0.35.4"
    with pytest.raises(ValueError, match="cri_tools"):
        Release("v1.35.4")  # a full release names its crictl


def test_kube_router_is_a_unit_of_every_full_release() -> None:
    from components.kubeadm_pins import KubeadmPins
    from components.releases import KUBE_ROUTER, KUBEADM_ONLY, Release

    release = Release("v1.37.2", cri_tools="v1.37.0")
    units = {u.name: u for u in units_for(release, KubeadmPins("v1.37.2", "3.7.0-0", "v1.14.6", "3.10.2"))}
    unit = units["kube-router"]
    assert (unit.module, unit.version) == ("github.com/cloudnativelabs/kube-router/v2", KUBE_ROUTER)
    assert [unit.output_name(t) for t in unit.tools] == ["kube-router", "gobgp"]
    ((group, packages),) = group_packages(unit, list(unit.tools))  # one go build for both
    assert not group.cgo and sorted(packages) == sorted(unit.tools)
    stamp = "-X github.com/cloudnativelabs/kube-router/v2/pkg/version"
    assert group.ldflags == (f"{stamp}.Version={KUBE_ROUTER}", f"{stamp}.BuildDate={{build_date}}")
    assert [u.name for u in units_for(Release("v1.35.4", scope=KUBEADM_ONLY), None)] == ["kubernetes"]


TIDY_OUTPUT = """\
go: finding module for package go.opentelemetry.io/otel/exporters/otlp/otlptrace
go: finding module for package github.com/Azure/go-ansiterm/winterm
go: downloading github.com/cenkalti/backoff/v4 v4.3.0
go: found go.opentelemetry.io/otel/exporters/otlp/otlptrace in go.opentelemetry.io/otel/exporters/otlp/otlptrace v1.47.0
go: found github.com/Azure/go-ansiterm in github.com/Azure/go-ansiterm v0.0.0-20261006220739-8c912ac31dd4
go: found github.com/Azure/go-ansiterm/winterm in github.com/Azure/go-ansiterm v0.0.0-20261006220739-8c912ac31dd4
"""


def test_modules_tidy_took_at_latest_are_read_from_its_output() -> None:
    assert gomod.resolved_to_latest(TIDY_OUTPUT) == {
        "go.opentelemetry.io/otel/exporters/otlp/otlptrace": "v1.47.0",
        "github.com/Azure/go-ansiterm": "v0.0.0-20261006220739-8c912ac31dd4",
    }
    assert gomod.resolved_to_latest("go: downloading k8s.io/api v0.37.2\n") == {}


def test_semver_order_is_go_version_order() -> None:
    ordered = ["v0.0.0-20210617225240-d185dfc1b5a1", "v0.0.0-20261006220739-8c912ac31dd4", "v1.0.0-alpha",
               "v1.0.0-alpha.1", "v1.0.0-beta.2", "v1.0.0-beta.11", "v1.0.0-rc.1", "v1.0.0", "v1.9.3", "v1.10.0",
               "v25.0.3+incompatible"]
    assert sorted(reversed(ordered), key=gomod.semver_key) == ordered


class _FakeGo:
    """GoTool's pin-time calls: the first tidy takes one module at its latest, as `go mod tidy` does
    when an upstream go.mod (read as a dependency's) leaves that module out."""

    def __init__(self, root: Path, upstream: dict[str, str] | None = None) -> None:
        self.root = root
        self.tidied: list[str] = []
        self.upstream = {"example.com/dep": "v1.2.0", "example.com/missing": "v1.1.0"} if upstream is None else upstream

    def download(self, cwd: Path, specs: list[str]) -> list[object]:
        from components.gotool import ModuleInfo

        (spec,) = specs
        path, version = spec.split("@")
        d = self.root / "mod"
        d.mkdir(exist_ok=True)
        (d / "go.mod").write_text(f"module {path}\n\ngo 1.21\n\nrequire example.com/dep v1.2.0\n")
        (d / "go.sum").write_text("")
        return [ModuleInfo(path, version, d, d / "go.mod", None)]

    def tidy(self, cwd: Path) -> str:
        self.tidied.append((cwd / "go.mod").read_text())
        (cwd / "go.sum").write_text("")
        if "example.com/missing" in self.tidied[-1]:
            return ""
        return "go: found example.com/missing/pkg in example.com/missing v9.0.0\n"

    def build_list(self, cwd: Path) -> dict[str, str]:
        assert (cwd / "go.mod").read_text().startswith("module example.com/up")
        return self.upstream


FAKE_UNIT = GoUnit(name="up", component="up", module="example.com/up", version="v1.0.0",
                   groups=(BuildGroup(packages=None),), tools=("example.com/up/cmd/up",))


def test_a_module_tidy_took_at_latest_is_pinned_at_upstreams_version(tmp_path: Path) -> None:
    from components.pin import pin_unit
    from components.releases import Release

    go = _FakeGo(tmp_path)
    pin_unit(Release("v1.37.2", cri_tools="v1.37.0"), FAKE_UNIT, tmp_path / "out", go, tmp_path / "scratch")  # type: ignore[arg-type]
    assert len(go.tidied) == 2
    assert gomod.requires(go.tidied[1]) == {"example.com/missing": "v1.1.0", "example.com/up": "v1.0.0"}
    assert gomod.requires((tmp_path / "out" / "go.mod").read_text())["example.com/missing"] == "v1.1.0"


def test_a_module_upstream_never_used_stops_the_pin(tmp_path: Path) -> None:
    from components.errors import NotPinned
    from components.pin import pin_unit
    from components.releases import Release

    go = _FakeGo(tmp_path, upstream={"example.com/dep": "v1.2.0"})
    with pytest.raises(NotPinned, match=r"took the latest example\.com/missing"):
        pin_unit(Release("v1.37.2", cri_tools="v1.37.0"), FAKE_UNIT, tmp_path / "out", go, tmp_path / "scratch")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()  # a failed pin writes nothing
