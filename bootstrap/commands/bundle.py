"""`kbootstrap bundle create|verify`: offline artifacts, fetched once, checked everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bootstrap.artifacts.bundle import BINARIES, MANIFEST, create_bundle, default_bundle_dir, load_bundle
from bootstrap.commands.common import emit, output_option
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
@output_option
def create(out: str | None, kubernetes_version: str, binaries_from: str | None, output: str) -> None:
    version = str(KubeVersion.parse(kubernetes_version, "--kubernetes-version"))
    path = Path(out) if out else default_bundle_dir(version)
    if out is None and (path / MANIFEST).is_file():
        _report(load_bundle(path), output, f"a bundle for {version} is already at {path}: nothing to do")
        return
    b = create_bundle(path, version, binaries_from=binaries_from)
    _report(b, output, f"bundle written to {path}")


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
        "missing": missing,
    }

    def text() -> str:
        lines = [headline, f"  {len(b.debs)} Debian packages, binaries: {', '.join(data['binaries']) or 'none'}"]
        if missing:
            lines.append(
                f"  missing: {', '.join(missing)} (no source on this machine; pass --binaries-from DIR, "
                f"or skip their phases: --skip-phases {','.join('binaries/' + m for m in missing)})"
            )
        return "\n".join(lines)

    emit(output, data, text)
