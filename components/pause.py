"""The pause binary, from the kubernetes module's own build/pause/linux/pause.c, as its Makefile builds it:
`gcc -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV)` and then strip."""

from __future__ import annotations

import os
from pathlib import Path

from components.buildlog import BuildLog
from components.kubeadm_pins import KubeadmPins, pause_version_string

SOURCE = "build/pause/linux/pause.c"


def cflags(pins: KubeadmPins) -> list[str]:
    version = pause_version_string(pins.pause_image_tag, pins.kubernetes)
    return ["-Os", "-Wall", "-Werror", "-static", f"-DVERSION={version}"]


def recipe(pins: KubeadmPins, cc_version: str) -> str:
    return " ".join(["gcc", *cflags(pins), SOURCE, "&& strip", "|", cc_version])


def build_pause(kubernetes_dir: Path, pins: KubeadmPins, dest: Path, log: BuildLog) -> None:
    """Compile pause into `dest` (via a temp name in the same directory)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    try:
        log.run(["gcc", *cflags(pins), "-o", str(tmp), str(kubernetes_dir / SOURCE)], what="gcc pause.c")
        log.run(["strip", str(tmp)], what="strip pause")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
