"""`make components-pin RELEASE=vX.Y.Z`: (re)write that release's go.mod/go.sum and pins.json.

kubeadm's constants.go of the release decides etcd and CoreDNS (written to pins.json, which the build
checks against the same file again); each unit's go.mod comes from gomod.render and `go mod tidy`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from components import gomod
from components.buildlog import BuildLog
from components.errors import NotPinned
from components.gotool import GoTool, ModuleInfo
from components.kubeadm_pins import KubeadmPins, read_pins
from components.releases import FULL, OPTIONAL_UNITS, Release
from components.units import GoUnit, kubernetes_unit, units_for

MODULES_DIR = Path(__file__).resolve().parent / "modules"
PINS_FILE = "pins.json"


def release_dir(release: Release, modules_dir: Path = MODULES_DIR) -> Path:
    return modules_dir / release.kubernetes


def unit_module_path(release: Release, unit: GoUnit) -> str:
    return f"kbootstrap.local/components/{release.kubernetes}/{unit.name}"


def _go_version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def kubeadm_pins_from(info: ModuleInfo) -> KubeadmPins:
    constants = (info.dir / "cmd/kubeadm/app/constants/constants.go").read_text()
    pause_makefile = (info.dir / "build/pause/Makefile").read_text()
    return read_pins(info.version, constants, pause_makefile)


def read_pins_file(release: Release, modules_dir: Path = MODULES_DIR) -> KubeadmPins | None:
    path = release_dir(release, modules_dir) / PINS_FILE
    if release.scope != FULL:
        return None
    if not path.is_file():
        raise NotPinned(f"{release.kubernetes} is not pinned ({path} is missing): run make components-pin "
                        f"RELEASE={release.kubernetes}")
    return KubeadmPins.from_json(json.loads(path.read_text()))


def pin_unit(release: Release, unit: GoUnit, unit_dir: Path, go: GoTool, scratch: Path) -> None:
    infos = [go.download(scratch, [f"{m}@{unit.version}"])[0] for m in unit.upstream_modules]
    upstream = [i.gomod.read_text() for i in infos]
    tools = list(unit.tools) or (unit.discover(infos[0].dir) if unit.discover else [])
    if not tools:
        raise NotPinned(f"{unit.name}: nothing to build")
    go_versions = [v for v in (gomod.go_directive(t) for t in upstream) if v]

    def render(seed: dict[str, str]) -> str:
        return gomod.render(
            module=unit_module_path(release, unit),
            go_version=max(go_versions, key=_go_version_key) if go_versions else "1.26",
            require={**seed, **{m: unit.version for m in unit.upstream_modules}},
            replace=gomod.carried_replaces(upstream, unit.local_replace_version or unit.version),
            tool=tools,
        )

    # Tidied in scratch and copied in after: a failed pin (a refused module) leaves the old files.
    work = scratch / "units" / unit.name
    work.mkdir(parents=True)
    (work / "go.mod").write_text(render({}))
    latest = gomod.resolved_to_latest(go.tidy(work))
    if latest:
        # Some module the upstream build uses is missing from what its go.mod tells a dependent
        # (graph pruning: kube-router v2.1.0 leaves out otlptrace, proto/otlp, backoff, go-ansiterm),
        # and tidy took the module's latest version, which raises half the build list through MVS
        # (gRPC v1.62 -> v1.84). Those modules are required at upstream's own build-list versions.
        wanted = _upstream_build_list(unit, infos, go, scratch)
        unknown = sorted(set(latest) - set(wanted))
        if unknown:
            raise NotPinned(f"{unit.name}: go mod tidy took the latest {', '.join(unknown)}, which upstream's "
                            "build list does not have")
        (work / "go.mod").write_text(render({m: wanted[m] for m in latest}))
        again = gomod.resolved_to_latest(go.tidy(work))
        if again:
            raise NotPinned(f"{unit.name}: go mod tidy still takes the latest {', '.join(sorted(again))}")
    tidied = gomod.requires((work / "go.mod").read_text())
    for m in unit.upstream_modules:
        if tidied.get(m) != unit.version:
            raise NotPinned(f"{unit.name}: go mod tidy moved {m} to {tidied.get(m)} (pinned {unit.version})")
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name in ("go.mod", "go.sum"):
        shutil.copyfile(work / name, unit_dir / name)


def _upstream_build_list(unit: GoUnit, infos: Sequence[ModuleInfo], go: GoTool, scratch: Path) -> dict[str, str]:
    """The versions upstream's own builds use (`go list -m all` on each upstream go.mod + go.sum);
    where two upstream modules of a unit differ, the higher (what MVS would pick)."""
    out: dict[str, str] = {}
    for info in infos:
        d = scratch / "upstream" / unit.name / info.path.replace("/", "_")
        d.mkdir(parents=True)
        shutil.copyfile(info.gomod, d / "go.mod")
        if (info.dir / "go.sum").is_file():
            shutil.copyfile(info.dir / "go.sum", d / "go.sum")
        for m, v in go.build_list(d).items():
            out[m] = max(out.get(m, v), v, key=gomod.semver_key)
    return out


def pin_release(
    release: Release, go: GoTool, log: BuildLog, modules_dir: Path = MODULES_DIR, extra: Sequence[str] = ()
) -> KubeadmPins | None:
    out = release_dir(release, modules_dir)
    with tempfile.TemporaryDirectory(prefix="kbootstrap-pin-") as tmp:
        scratch = Path(tmp)
        k8s = kubernetes_unit(release)
        (k8s_info,) = go.download(scratch, [f"{k8s.module}@{k8s.version}"])
        pins = kubeadm_pins_from(k8s_info) if release.scope == FULL else None
        units = units_for(release, pins, extra)
        keep = {u.name for u in units} | set(OPTIONAL_UNITS)  # an optional unit pinned before stays
        stale = {p.name for p in out.iterdir() if p.is_dir()} - keep if out.is_dir() else set()
        for name in stale:
            shutil.rmtree(out / name)
        for unit in units:
            log.note(f"pin {release.kubernetes} {unit.name} {unit.version}")
            pin_unit(release, unit, out / unit.name, go, scratch)
    pins_path = out / PINS_FILE
    if pins:
        pins_path.write_text(json.dumps(pins.to_json(), indent=2, sort_keys=True) + "\n")
    else:
        pins_path.unlink(missing_ok=True)
    return pins
