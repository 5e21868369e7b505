"""`kbootstrap bundle create|verify`: offline artifacts, fetched once, checked everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bootstrap.artifacts.bundle import BINARIES, MANIFEST, create_bundle, default_bundle_dir, load_bundle
from bootstrap.artifacts.components import Components, load_components
from bootstrap.artifacts.images import DEFAULT_REGISTRY, fetch_images, kubeadm_images
from bootstrap.commands.common import emit, output_option
from bootstrap.errors import RequirementError
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION, KubeVersion


@click.group("bundle", help="Build and check offline bundles (Debian packages, binaries, sha256 manifest).")
def bundle() -> None:
    pass


@bundle.command("create", help="Download node packages with their dependencies and copy binaries into DIR.")
@click.option("--dir", "out", type=click.Path(file_okay=False),
              help="Directory to create. [default: /var/cache/kbootstrap/bundles/VERSION-RECIPE]")
@click.option("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION, show_default=True)
@click.option(
    "--binaries-from",
    type=click.Path(file_okay=False, exists=True),
    help="A directory holding kubectl, kubelet and kubeadm for the target version.",
)
@click.option(
    "--components",
    "components_dir",
    type=click.Path(file_okay=False),
    help="Take binaries, runtime, etcd, CNI plugins and images from a pinned component build (the directory "
    "holding RELEASE/manifest.json; `auto`: ~/.cache/kbootstrap/components when it has this release).",
)
@click.option(
    "--images/--no-images",
    default=True,
    show_default=True,
    help="Without --components: fetch kubeadm's images for the release with skopeo into the bundle.",
)
@click.option("--image-registry", default=DEFAULT_REGISTRY, show_default=True,
              help="Where --images fetches from (registry.k8s.io, or a mirror with the same names).")
@output_option
def create(
    out: str | None,
    kubernetes_version: str,
    binaries_from: str | None,
    components_dir: str | None,
    images: bool,
    image_registry: str,
    output: str,
) -> None:
    version = str(KubeVersion.parse(kubernetes_version, "--kubernetes-version"))
    components = _components(components_dir, version)
    path = Path(out) if out else default_bundle_dir(version, components)
    if out is None and (path / MANIFEST).is_file():
        _report(load_bundle(path), output, f"a bundle for {version} is already at {path}: nothing to do")
        return
    fetch = None
    if components is None and images:
        def fetch(into: Path) -> dict[str, Any]:
            return fetch_images(kubeadm_images(version), into, source=image_registry)
    b = create_bundle(path, version, binaries_from=binaries_from, components=components, images_from=fetch)
    _report(b, output, f"bundle written to {path}")


def _components(where: str | None, version: str) -> Components | None:
    if where is None:
        return None
    if where == "auto":
        try:
            return load_components(version)
        except RequirementError:
            return None
    return load_components(version, Path(where))


@bundle.command("verify", help="Check every file of a bundle against its sha256 manifest.")
@click.argument("path", type=click.Path(file_okay=False))
@output_option
def verify(path: str, output: str) -> None:
    b = load_bundle(path, verify=True)
    _report(b, output, f"{path}: all {len(b.files)} checksums match")


def _report(b: Any, output: str, headline: str) -> None:
    missing = [n for n in BINARIES if b.binary(n) is None]
    data = {
        "path": str(b.root),
        "kubernetes_version": b.kubernetes_version,
        "files": len(b.files),
        "packages": sorted(b.debs),
        "binaries": sorted(n for n in BINARIES if b.binary(n)),
        "runtime": "components" if b.has_runtime else "debian",
        "images": sorted(b.images),
        "missing": missing,
    }

    def text() -> str:
        lines = [headline, f"  {len(b.debs)} Debian packages, binaries: {', '.join(data['binaries']) or 'none'}",
                 f"  container runtime: {'containerd and runc from the component build' if b.has_runtime else 'Debian'}"
                 f", {len(b.images)} images"]
        if missing:
            lines.append(
                f"  missing: {', '.join(missing)} (no source on this machine; pass --binaries-from DIR, "
                f"or skip their phases: --skip-phases {','.join('binaries/' + m for m in missing)})"
            )
        return "\n".join(lines)

    emit(output, data, text)
