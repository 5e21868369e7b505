"""Offline bundles: everything a node needs, fetched once on the control machine, with sha256s.

Layout (the directory is the contract):
    manifest.json            {"kubernetes_version", "files": {relpath: {"sha256", "size", ...}}}
    debs/*.deb               Debian packages and their dependencies (apt-get download)
    bin/kubectl, bin/kubelet, bin/kubeadm   binaries, when the control machine has them
    bin/containerd, bin/runc, bin/crictl, bin/etcd, bin/cni/*, ...   with --components: the pinned
                             build's runtime (containerd 2, runc), crictl, etcd and CNI plugins
    images/*.tar             OCI archives with their references (`image` in the manifest entry)

Installing from a bundle verifies every checksum first and refuses a mismatch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.artifacts.components import Components
from bootstrap.errors import ConfigError, RequirementError
from bootstrap.localfiles import write_atomic

# What a node gets from Debian. etcd only matters on etcd members; the rest everywhere.
NODE_PACKAGES = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "conntrack",
    "socat",
    "ethtool",
    "ebtables",
    "iptables",
    "kmod",
)
ETCD_PACKAGES = ("etcd-server", "etcd-client")
LB_PACKAGES = ("haproxy", "keepalived")  # the HA API endpoint (VIP + load balancer)
BINARIES = ("kubectl", "kubelet", "kubeadm")
# What a node gets from the pinned component build instead of Debian (a kubelet of v1.36+ needs
# containerd 1.7 or newer; bookworm ships 1.6), and the Debian packages they replace.
RUNTIME_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl")
ETCD_BINARIES = ("etcd", "etcdctl", "etcdutl")
REPLACED_BY_COMPONENTS = ("containerd", "runc", "containernetworking-plugins", "etcd-server", "etcd-client")
MANIFEST = "manifest.json"
VERIFIED = ".verified.json"  # checksums as last verified, by file identity (verify_bundle)
BUNDLE_CACHE = Path("/var/cache/kbootstrap/bundles")


def default_bundle_dir(kubernetes_version: str, components: Components | None = None) -> Path:
    """Where `bundle create` puts a bundle by default, and where lab inventories point. The name
    carries a hash of what goes in, so a bundle made from an older package list (or other
    components) is never reused."""
    recipe = ",".join(NODE_PACKAGES + ETCD_PACKAGES + LB_PACKAGES + BINARIES)
    if components is not None:
        recipe += "|" + ",".join(f"{a.name}={a.sha256}" for a in sorted(
            [*components.binaries.values(), *components.images.values()], key=lambda a: a.name))
    return BUNDLE_CACHE / f"{kubernetes_version}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Deb:
    path: str  # relative to the bundle
    package: str
    version: str
    depends: tuple[tuple[str, ...], ...]  # AND of OR-groups of package names
    sha256: str


@dataclass
class Bundle:
    root: Path
    kubernetes_version: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def debs(self) -> dict[str, Deb]:
        out = {}
        for rel, meta in self.files.items():
            if rel.startswith("debs/"):
                out[meta["package"]] = Deb(
                    rel,
                    meta["package"],
                    meta["version"],
                    tuple(tuple(g) for g in meta.get("depends", [])),
                    meta["sha256"],
                )
        return out

    def binary(self, name: str) -> Path | None:
        rel = f"bin/{name}"
        return self.root / rel if rel in self.files else None

    @property
    def has_runtime(self) -> bool:
        """containerd, runc and crictl from the component build (instead of Debian's packages)."""
        return all(f"bin/{n}" in self.files for n in RUNTIME_BINARIES)

    @property
    def has_etcd(self) -> bool:
        return all(f"bin/{n}" in self.files for n in ETCD_BINARIES)

    @property
    def cni_plugins(self) -> list[str]:
        return sorted(rel.removeprefix("bin/cni/") for rel in self.files if rel.startswith("bin/cni/"))

    @property
    def images(self) -> dict[str, str]:
        """Image reference -> the OCI archive's path in the bundle."""
        return {str(m["image"]): rel for rel, m in self.files.items() if rel.startswith("images/") and m.get("image")}

    def sha256(self, rel: str) -> str:
        return str(self.files[rel]["sha256"])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    root = Path(path)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise ConfigError("bundle", f"{root} has no {MANIFEST}", hint="create one with `kbootstrap bundle create`")
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        raise ConfigError("bundle", f"{manifest} is not valid JSON") from None
    bundle = Bundle(root, data.get("kubernetes_version", ""), data.get("files", {}))
    if verify:
        verify_bundle(bundle)
    return bundle


def verify_bundle(bundle: Bundle) -> None:
    """Every listed file is there with its sha256. Hashing the bundle (a few hundred MB) on every
    run would cost more than a rerun's work on the nodes, so the checksums verified last time are
    kept beside the manifest with each file's size, mtime, ctime and inode (git's index does the
    same), and a file is hashed again whenever any of them changed."""
    known = _verified(bundle.root)
    verified: dict[str, list[Any]] = {}
    for rel, meta in bundle.files.items():
        p = bundle.root / rel
        if not p.is_file():
            raise ConfigError("bundle", f"{rel} is listed in the manifest but missing from {bundle.root}")
        st = p.stat()
        identity = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        seen = known.get(rel)
        actual = seen[1] if isinstance(seen, list) and len(seen) == 2 and seen[0] == identity else sha256_file(p)
        if actual != meta["sha256"]:
            raise ConfigError(
                "bundle",
                f"checksum mismatch for {rel}: expected {meta['sha256'][:16]}..., got {actual[:16]}...",
                hint="the bundle is corrupt or was tampered with; rebuild it",
            )
        verified[rel] = [identity, actual]
    if verified != known:
        with contextlib.suppress(OSError):  # a read-only bundle is verified in full every time
            write_atomic(bundle.root / VERIFIED, json.dumps(verified, sort_keys=True))


def _verified(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / VERIFIED).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def create_bundle(
    out: str | Path,
    kubernetes_version: str,
    *,
    binaries_from: str | None = None,
    extra_packages: tuple[str, ...] = (),
    components: Components | None = None,
    images_from: Callable[[Path], dict[str, dict[str, Any]]] | None = None,
) -> Bundle:
    """apt-get download the node packages and their dependencies; copy binaries (and, with
    `components`, the pinned build's runtime, etcd, CNI plugins and images); write the manifest.
    `images_from(dir)` fetches image archives into dir some other way (a registry, via skopeo) and
    returns their manifest entries. Built in a temp dir and renamed, so an interrupted build leaves
    nothing that looks complete."""
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RequirementError(f"{tool} not found", hint="bundles are built on a Debian control machine")
    out = Path(out)
    if (out / MANIFEST).exists():
        raise ConfigError("bundle create", f"{out} already holds a bundle", hint="remove it or choose another --dir")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "debs").mkdir()
        packages = NODE_PACKAGES + ETCD_PACKAGES + LB_PACKAGES + extra_packages
        if components is not None:
            packages = tuple(p for p in packages if p not in REPLACED_BY_COMPONENTS)
        wanted = _with_dependencies(packages)
        proc = subprocess.run(["apt-get", "download", *wanted], cwd=tmp / "debs", capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
            raise RequirementError(
                f"apt-get download failed: {last}", hint="run `apt-get update` and check the sources"
            )
        files: dict[str, dict[str, Any]] = {}
        for deb in sorted((tmp / "debs").glob("*.deb")):
            files[f"debs/{deb.name}"] = {"sha256": sha256_file(deb), "size": deb.stat().st_size, **_deb_fields(deb)}
        (tmp / "bin").mkdir()
        for name in BINARIES:
            src = components.binary(name) if components is not None else None
            src = src or _find_binary(name, kubernetes_version, binaries_from)
            if src is None:
                continue
            files[f"bin/{name}"] = _copy(src, tmp / "bin" / name, 0o755)
        if components is not None:
            files.update(_component_files(components, tmp))
        if images_from is not None:
            (tmp / "images").mkdir(exist_ok=True)
            files.update(images_from(tmp / "images"))
        manifest = {"kubernetes_version": kubernetes_version, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if out.exists():
            out.rmdir()  # only an empty dir can be here (checked above for a manifest)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(out, verify=False)


def _copy(src: Path, dst: Path, mode: int, **meta: Any) -> dict[str, Any]:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)
    return {"sha256": sha256_file(dst), "size": dst.stat().st_size, "source": str(src), **meta}


def _component_files(components: Components, into: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for name in (*RUNTIME_BINARIES, *ETCD_BINARIES):
        files[f"bin/{name}"] = _copy(components.binary(name), into / "bin" / name, 0o755)
    for name, artifact in components.binaries.items():
        if name.startswith("cni/"):
            files[f"bin/{name}"] = _copy(artifact.path, into / "bin" / name, 0o755)
    for name, artifact in components.images.items():
        files[f"images/{name}.tar"] = _copy(artifact.path, into / "images" / f"{name}.tar", 0o644, image=artifact.image)
    return files


def _with_dependencies(packages: tuple[str, ...]) -> list[str]:
    proc = subprocess.run(
        [
            "apt-cache",
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *packages,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RequirementError(f"apt-cache cannot resolve {' '.join(packages)}", hint="run `apt-get update` first")
    names = {ln.strip() for ln in proc.stdout.splitlines() if ln and not ln.startswith(" ") and not ln.startswith("<")}
    # Essential packages are on every Debian system; virtual packages cannot be downloaded.
    essential = _essential()
    candidates = _with_candidate(sorted(n for n in names if n not in essential))
    return [n for n in sorted(names) if n in candidates]


def _essential() -> set[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential}\n"], capture_output=True, text=True)
    return {ln.split()[0] for ln in proc.stdout.splitlines() if ln.endswith(" yes")}


def _with_candidate(names: list[str]) -> set[str]:
    """Names apt can download (virtual packages have no candidate). One apt-cache call for all."""
    proc = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True)
    found, current = set(), None
    for line in proc.stdout.splitlines():
        if line and not line.startswith(" "):
            current = line.rstrip(":")
        elif current and line.strip().startswith("Candidate:") and line.split()[-1] != "(none)":
            found.add(current)
    return found


def _deb_fields(deb: Path) -> dict[str, Any]:
    proc = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends", "Pre-Depends"],
        capture_output=True,
        text=True,
        check=True,
    )
    fields: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(": ")
        fields[key] = value
    groups = []
    for rel in ", ".join(v for v in (fields.get("Pre-Depends"), fields.get("Depends")) if v).split(","):
        alts = tuple(re.sub(r"[:\s(].*", "", a.strip()) for a in rel.split("|") if a.strip())
        if alts:
            groups.append(list(alts))
    return {"package": fields["Package"], "version": fields["Version"], "depends": groups}


def _find_binary(name: str, kubernetes_version: str, binaries_from: str | None) -> Path | None:
    """A --binaries-from dir first; else what this machine has (kubectl: the matching minor if the
    Cloud SDK's versioned copies exist, else the newest one, within kubectl's +-1 skew)."""
    if binaries_from:
        p = Path(binaries_from) / name
        return p if p.is_file() else None
    if name != "kubectl":
        return None
    found = shutil.which("kubectl")
    if not found:
        return None
    real = Path(found).resolve()
    m = re.match(r"v?1\.(\d+)", kubernetes_version)
    minor = int(m[1]) if m else 0
    for candidate in (minor, minor - 1, minor + 1):
        versioned = real.parent / f"kubectl.1.{candidate}"
        if versioned.is_file():
            return versioned
    return real


def packages_to_install(bundle: Bundle, wanted: tuple[str, ...], installed: set[str]) -> list[Deb]:
    """The bundle's debs needed for `wanted` on a node that already has `installed` (names)."""
    debs = bundle.debs
    needed: dict[str, Deb] = {}

    def add(name: str) -> None:
        if name in installed or name in needed:
            return
        deb = debs.get(name)
        if deb is None:
            raise ConfigError(
                "bundle",
                f"package {name} is needed but not in the bundle at {bundle.root}",
                hint="rebuild the bundle with `kbootstrap bundle create`",
            )
        needed[name] = deb
        for group in deb.depends:
            if any(alt in installed or alt in needed for alt in group):
                continue
            choice = next((alt for alt in group if alt in debs), None)
            if choice is None:
                continue  # a virtual or essential package the node already provides
            add(choice)

    for name in wanted:
        add(name)
    return sorted(needed.values(), key=lambda d: d.package)
