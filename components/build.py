"""Build one release's components into OUT/RELEASE/: bin/, images/, manifest.json, build.log.

Steps run one after another (each `go build` already uses every core via -p), each skipped when its
stamp is valid. Outputs are built under OUT/RELEASE/.work/ and renamed into place before the stamp
is written, so an interrupted build never leaves a half artifact that a rerun trusts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from components import gomod, oci, pause
from components.buildlog import BuildLog, Progress
from components.errors import BuildError, NotPinned
from components.gotool import BUILD_GOFLAGS, GoTool, ModuleInfo
from components.images import ImagePlan, kubernetes_images
from components.kubeadm_pins import KubeadmPins
from components.manifest import Artifact, Manifest, Source, write_manifest
from components.pin import MODULES_DIR, kubeadm_pins_from, read_pins_file, release_dir
from components.releases import FULL, OPTIONAL_UNITS, Release
from components.stamps import Stamp, inputs_hash, sha256_file, stamp_path, valid_stamp, write_stamp
from components.toolchain import cc_version, deb_version
from components.units import GoUnit, default_exe_name, group_packages, units_for

ENV_ROOT = "KBOOTSTRAP_COMPONENTS"
BUILDER_VERSION = "1"  # bump when a change here must rebuild every step


def default_root() -> Path:
    env = os.environ.get(ENV_ROOT)
    return Path(env) if env else Path.home() / ".cache" / "kbootstrap" / "components"


@dataclass
class BuildResult:
    release: str
    directory: Path
    log: Path
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build of a release directory at a time (two `make components` would race on the renames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _binary_artifact(out_dir: Path, rel_path: str, name: str, version: str, source: Source) -> Artifact:
    path = out_dir / rel_path
    return Artifact(name, "binary", version, source, sha256_file(path), path.stat().st_size, rel_path)


class ReleaseBuild:
    def __init__(self, release: Release, root: Path, jobs: int, log: BuildLog, extra: Sequence[str] = (),
                 modules_dir: Path = MODULES_DIR) -> None:
        self.release = release
        self.out = root / release.kubernetes
        self.jobs = jobs
        self.log = log
        self.extra = tuple(extra)
        self.modules = release_dir(release, modules_dir)
        self.go = GoTool(log, jobs)
        self.work = self.out / ".work"
        self.result = BuildResult(release.kubernetes, self.out, log.path)
        self._infos: dict[str, ModuleInfo] = {}
        self.manifest_path = self.out / "manifest.json"

    def _replacing_outputs(self) -> None:
        """Called before an output is replaced: the old manifest.json no longer describes bin/ and
        images/, so it goes until the build completes and writes the new one."""
        self.manifest_path.unlink(missing_ok=True)

    # -- steps --------------------------------------------------------------------------------

    def run(self) -> BuildResult:
        start = time.monotonic()
        pins = read_pins_file(self.release, self.modules.parent)
        units = units_for(self.release, pins, self.extra)
        for unit in units:
            self._check_pinned(unit)
        go_version = self.go.version()
        artifacts: list[Artifact] = []
        for unit in units:
            artifacts += self._go_unit(unit, go_version, pins)
        if self.release.scope == FULL:
            assert pins is not None
            artifacts.append(self._pause(pins))
            binaries = {a.name: a for a in artifacts}
            flannel = [u for u in units if u.name == "flannel"]
            flannel_dir = self._module_dir(flannel[0]) if flannel else None
            for plan in kubernetes_images(self.release.kubernetes, pins, binaries, self.out, flannel_dir):
                artifacts.append(self._image(plan))
        if write_manifest(self.manifest_path, Manifest(self.release.kubernetes, go_version, artifacts)):
            self.log.note(f"{self.release.kubernetes}: wrote {self.manifest_path}", show=False)
        shutil.rmtree(self.work, ignore_errors=True)
        self.result.seconds = time.monotonic() - start
        return self.result

    def _check_pinned(self, unit: GoUnit) -> None:
        gomod_path = self.modules / unit.name / "go.mod"
        hint = f"run make components-pin RELEASE={self.release.kubernetes}"
        if unit.name in OPTIONAL_UNITS:
            hint = f"run python3 -m components pin {self.release.kubernetes} --with {unit.name}"
        if not gomod_path.is_file() or not (gomod_path.parent / "go.sum").is_file():
            raise NotPinned(f"{self.release.kubernetes}/{unit.name} is not pinned ({gomod_path} missing): {hint}")
        pinned = gomod.requires(gomod_path.read_text())
        for m in unit.upstream_modules:
            if pinned.get(m) != unit.version:
                raise NotPinned(f"{gomod_path} pins {m} {pinned.get(m)}, components/releases.py or kubeadm says "
                                f"{unit.version}: {hint}")

    def _unit_inputs(self, unit: GoUnit, go_version: str) -> str:
        d = self.modules / unit.name
        parts: list[str | bytes] = [BUILDER_VERSION, go_version, BUILD_GOFLAGS, unit.recipe_json(),
                                    (d / "go.mod").read_bytes(), (d / "go.sum").read_bytes()]
        if any(g.cgo for g in unit.groups):
            parts.append(cc_version(self.log))  # gcc and libseccomp.a are linked in
            parts.append(deb_version("libseccomp-dev"))
        return inputs_hash(parts)

    def _module_dir(self, unit: GoUnit) -> Path:
        return self._main_module(unit).dir

    def _main_module(self, unit: GoUnit) -> ModuleInfo:
        if unit.name not in self._infos:
            (info,) = self.go.download(self.modules / unit.name, [unit.module])
            self._infos[unit.name] = info
        return self._infos[unit.name]

    def _go_unit(self, unit: GoUnit, go_version: str, pins: KubeadmPins | None) -> list[Artifact]:
        step = f"go-{unit.name}"
        inputs = self._unit_inputs(unit, go_version)
        stamp = valid_stamp(self.out, step, inputs)
        if stamp:
            self.result.reused.append(unit.name)
            return list(stamp.artifacts)
        unit_dir = self.modules / unit.name
        self.log.note(f"{self.release.kubernetes}: downloading modules for {unit.name} {unit.version}")
        self.go.download(unit_dir)  # the whole build list: a refused module stops here, named
        info = self._main_module(unit)
        if unit.name == "kubernetes" and pins is not None:
            _check_kubeadm_pins(pins, kubeadm_pins_from(info))
        gomod_text = (unit_dir / "go.mod").read_text()
        work = self.work / unit.name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        artifacts = []
        for group, packages in group_packages(unit, gomod.tools(gomod_text)):
            names = ", ".join(unit.output_name(p) for p in packages)
            started = time.monotonic()
            self.log.note(f"{self.release.kubernetes}: go build {unit.name} {unit.version}: {names}")
            self.go.build(unit_dir, group, packages, work, info.time, what=f"go build ({unit.name}: {names})")
            took = time.monotonic() - started
            self.log.note(f"{self.release.kubernetes}: {unit.name} built in {took:.0f}s", show=False)
            for package in packages:
                rel_path = f"bin/{unit.output_name(package)}"
                (self.out / rel_path).parent.mkdir(parents=True, exist_ok=True)
                built = work / default_exe_name(package)
                if not built.is_file():
                    raise BuildError(f"go build ({unit.name}) did not write {built.name}", log=str(self.log.path))
                self._replacing_outputs()
                os.replace(built, self.out / rel_path)
                module, version = gomod.module_of(package, gomod_text)
                artifacts.append(_binary_artifact(
                    self.out, rel_path, unit.output_name(package), unit.version,
                    Source(version, module=module, package=package),
                ))
        write_stamp(stamp_path(self.out, step), Stamp(inputs, tuple(artifacts)))
        self.result.built.append(unit.name)
        return artifacts

    def _pause(self, pins: KubeadmPins) -> Artifact:
        step = "pause"
        inputs = inputs_hash([BUILDER_VERSION, pause.recipe(pins, cc_version(self.log))])
        stamp = valid_stamp(self.out, step, inputs)
        if stamp:
            self.result.reused.append(step)
            return stamp.artifacts[0]
        kubernetes_dir = self._module_dir(next(u for u in units_for(self.release, pins) if u.name == "kubernetes"))
        self.log.note(f"{self.release.kubernetes}: gcc pause.c (pause {pins.pause_image_tag})")
        self._replacing_outputs()
        pause.build_pause(kubernetes_dir, pins, self.out / "bin/pause", self.log)
        artifact = _binary_artifact(self.out, "bin/pause", "pause", pins.pause_image_tag,
                                    Source(pins.kubernetes, module="k8s.io/kubernetes", file=pause.SOURCE))
        write_stamp(stamp_path(self.out, step), Stamp(inputs, (artifact,)))
        self.result.built.append(step)
        return artifact

    def _image(self, plan: ImagePlan) -> Artifact:
        step = f"image-{plan.name}"
        inputs = inputs_hash([BUILDER_VERSION, plan.inputs()])
        stamp = valid_stamp(self.out, step, inputs)
        if stamp:
            self.result.reused.append(step)
            return stamp.artifacts[0]
        self.log.note(f"{self.release.kubernetes}: image {plan.reference}")
        rel_path = f"images/{plan.name}.tar"
        self._replacing_outputs()
        archive = oci.write_archive(self.out / rel_path, plan.reference, plan.layers, plan.config)
        artifact = Artifact(plan.name, "image", plan.version, plan.source, archive.sha256, archive.size, rel_path,
                            image=plan.reference, digest=archive.manifest.digest, contents=plan.contents)
        write_stamp(stamp_path(self.out, step), Stamp(inputs, (artifact,)))
        self.result.built.append(step)
        return artifact


def _check_kubeadm_pins(pinned: KubeadmPins, source: KubeadmPins) -> None:
    if pinned != source:
        raise NotPinned(f"pins.json says {pinned.to_json()}, but kubeadm {source.kubernetes}'s constants.go says "
                        f"{source.to_json()}: run make components-pin RELEASE={source.kubernetes}")


def build_release(release: Release, root: Path, *, jobs: int, progress: Progress | None = None,
                  extra: Sequence[str] = (), modules_dir: Path = MODULES_DIR) -> BuildResult:
    out = root / release.kubernetes
    with _locked(out / ".lock"):
        log = BuildLog(out / "build.log", progress)
        try:
            log.note(f"=== {release.kubernetes}: build started (jobs={jobs})", show=False)
            return ReleaseBuild(release, root, jobs, log, extra, modules_dir).run()
        finally:
            log.close()
