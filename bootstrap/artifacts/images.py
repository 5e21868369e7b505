"""The control-plane images a release needs (kubeadm's list), fetched into a bundle as OCI archives.

For real users the images come from registry.k8s.io (or a mirror with the same layout) through
Debian's skopeo, once, on the control machine; nodes then import them from the bundle, or pull
through a registry mirror. The lab uses its locally built components instead (bundle --components).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from bootstrap.errors import RequirementError
from bootstrap.versions import KubeVersion

DEFAULT_REGISTRY = "registry.k8s.io"
SKOPEO_TIMEOUT = 600


def kubeadm_images(version: str, repository: str = DEFAULT_REGISTRY) -> dict[str, str]:
    """name -> reference, as `kubeadm config images list --kubernetes-version VERSION` lists them
    (the same list `kbootstrap config images list` prints: render/kubeadm_defaults.py)."""
    from bootstrap.render.kubeadm_defaults import PLACEHOLDER_ADDRESS, control_plane_images
    from bootstrap.spec.model import ClusterSpec

    spec = ClusterSpec.model_validate({"kubernetes_version": str(KubeVersion.parse(version)),
                                       "image_repository": repository, "advertise_address": PLACEHOLDER_ADDRESS,
                                       "node": {"name": "node"}})
    return {ref.rsplit("/", 1)[-1].split(":", 1)[0]: ref for ref in control_plane_images(spec)}


def fetch_images(
    images: dict[str, str], into: Path, *, source: str = DEFAULT_REGISTRY, tls_verify: bool = True
) -> dict[str, dict[str, Any]]:
    """skopeo copy each image from `source` (registry.k8s.io, or a mirror holding the same names) into
    into/NAME.tar, an OCI archive that keeps the image's reference; returns the manifest entries."""
    from bootstrap.artifacts.bundle import sha256_file

    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise RequirementError("skopeo not found: bundles fetch images with it", hint="apt-get install skopeo")
    entries: dict[str, dict[str, Any]] = {}
    for name, ref in images.items():
        src_ref = source + ref[ref.index("/"):] if "/" in ref else ref
        dst = into / f"{name}.tar"
        proc = subprocess.run(
            [skopeo, "copy", "--quiet", f"--src-tls-verify={str(tls_verify).lower()}", f"docker://{src_ref}",
             f"oci-archive:{dst}:{ref}"],
            capture_output=True, text=True, timeout=SKOPEO_TIMEOUT,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RequirementError(f"cannot fetch {src_ref}: {last}",
                                   hint="check the registry (--image-registry) or build with --components DIR")
        entries[f"images/{name}.tar"] = {"sha256": sha256_file(dst), "size": dst.stat().st_size,
                                          "source": f"docker://{src_ref}", "image": ref}
    return entries
