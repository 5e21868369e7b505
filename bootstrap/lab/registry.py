"""The lab registry: Debian's docker-registry on the bridge address, TLS from a lab CA, images pushed
with skopeo.

Images are stored once per image set in a shared cache (`/var/cache/kbootstrap/registry-<hash>`), built
by a writable registry on the first lab that needs it and then served read-only by every lab's own
registry: a lab comes up in seconds even with the cluster's few hundred MB of images. An image is
kept under its full name (registry.k8s.io/pause:3.10.1 is `<lab registry>/registry.k8s.io/pause:3.10.1`),
and each node mirror points at `https://<lab registry>/v2/<upstream registry>` with override_path, so
images of different upstream registries never collide.

Crash safety as for the rest of the lab: the state file says where the registry is before it
starts; `down` finds the process by command line (its config lives in the lab directory) and the
files by path.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from bootstrap.errors import KbootstrapError, RequirementError
from bootstrap.lab import rootfs, testimage
from bootstrap.lab.hostcmd import need, pid_alive, run
from bootstrap.lab.state import LabState, locked, write_atomic
from bootstrap.pki import authority
from bootstrap.pki.catalog import SERVER_AUTH, AltNames, Subject
from bootstrap.pki.store import cert_pem, key_pem, parse_cert, parse_key
from bootstrap.spec.model import EncryptionAlgorithm

PORT = 5000
# Bump when the storage layout or how images are pushed changes: caches of older code are not reused.
STORAGE_RECIPE = "1"
COMPLETE_MARK = ".kbootstrap-registry-complete"
READY_TIMEOUT = 15.0
PUSH_TIMEOUT = 900.0
# Registries whose images a Kubernetes node pulls by default; mirrored even when no image of theirs
# is in the lab registry yet (a pull then fails at the mirror, never going elsewhere).
ALWAYS_MIRRORED = ("registry.k8s.io",)


@dataclass(frozen=True)
class Image:
    reference: str  # as nodes name it: registry.k8s.io/pause:3.10.1
    archive: Path  # an OCI archive (`skopeo copy oci-archive:`)
    sha256: str  # of the archive: part of the storage cache key


# --- names ----------------------------------------------------------------------------------------

def split_reference(ref: str) -> tuple[str, str]:
    """(registry, rest) of an image reference, with Docker's defaults for short names:
    'busybox:1' -> ('docker.io', 'library/busybox:1')."""
    first, _, rest = ref.partition("/")
    if not rest:
        return "docker.io", f"library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return first, rest
    return "docker.io", ref


def address(lab: LabState) -> str:
    return f"{lab.bridge_ip}:{PORT}"


def lab_reference(lab: LabState, ref: str) -> str:
    """Where the lab registry keeps an image: under its full name."""
    registry, rest = split_reference(ref)
    return f"{address(lab)}/{registry}/{rest}"


def mirrored_registries(images: list[str]) -> list[str]:
    return sorted({*ALWAYS_MIRRORED, *(split_reference(r)[0] for r in images)})


def mirrors(lab: LabState) -> list[dict[str, Any]]:
    """Kubespray's containerd_registries_mirrors pointing every mirrored registry at the lab's."""
    return [
        {"prefix": reg, "mirrors": [{
            "host": f"https://{address(lab)}/v2/{reg}", "capabilities": ["pull", "resolve"],
            "skip_verify": False, "override_path": True,
        }]}
        for reg in mirrored_registries(lab.registry_images)
    ]


def reg_dir(lab_dir: Path) -> Path:
    return lab_dir / "registry"


def ca_path(lab_dir: Path) -> Path:
    return reg_dir(lab_dir) / "ca.crt"


def _trust_dir(lab_dir: Path) -> Path:
    """Only the CA: skopeo's --dest-cert-dir takes every *.crt as a root and *.key as a client key."""
    return reg_dir(lab_dir) / "trust"


# --- images ---------------------------------------------------------------------------------------

def components_dir() -> Path:
    if env := os.environ.get("KBOOTSTRAP_COMPONENTS_DIR"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kbootstrap" / "components"


def components_images(root: Path | None = None) -> list[Image]:
    """The images of every components release built on this host.

    SEAM(components): bootstrap/artifacts/components.py (load_components) is being written on the
    components branch; until it is merged this reads its manifest.json directly, defensively:
    {"schema": 1, "artifacts": [{"kind": "image", "image": REF, "path": "images/X.tar", "sha256": HEX}]}
    with paths relative to the release directory. Anything else is skipped, not guessed at."""
    root = root or components_dir()
    out: dict[str, Image] = {}
    for release in sorted(root.glob("*")) if root.is_dir() else []:
        for mf in (release / "manifest.json", release / "images" / "manifest.json"):
            try:
                doc = json.loads(mf.read_text())
            except (OSError, ValueError):
                continue
            arts = doc.get("artifacts") if isinstance(doc, dict) else None
            for a in arts if isinstance(arts, list) else []:
                if not isinstance(a, dict) or a.get("kind") != "image":
                    continue
                ref, path, sha = a.get("image"), a.get("path"), a.get("sha256")
                if not (isinstance(ref, str) and isinstance(path, str) and isinstance(sha, str)):
                    continue
                archive = (mf.parent / path) if (mf.parent / path).is_file() else release / path
                if archive.is_file():
                    out[ref] = Image(ref, archive, sha)
            break
    return list(out.values())


def test_image() -> Image:
    archive = testimage.ensure_archive(rootfs.cache_root() / "images" / "kbootstrap-lab-busybox.tar")
    return Image(testimage.REFERENCE, archive, hashlib.sha256(archive.read_bytes()).hexdigest())


def lab_images() -> list[Image]:
    """What a lab registry serves: the components images built here (the cluster's, and their busybox
    test image); before any are built, the lab's own busybox test image."""
    return components_images() or [test_image()]


def test_image_reference(images: list[str]) -> str | None:
    """The busybox test image among the lab registry's images (components' or the lab's own)."""
    found = [r for r in images if split_reference(r)[1].rpartition(":")[0].endswith("busybox")]
    return found[0] if found else None


# --- PKI ------------------------------------------------------------------------------------------

def ensure_pki(lab: LabState) -> None:
    """A lab CA and a server certificate for the bridge address (made with `cryptography`). Kept
    across `up` re-runs; the server certificate is reissued when the address changed."""
    d = reg_dir(lab.dir)
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    ca_crt, ca_key = d / "ca.crt", d / "ca.key"
    if not (ca_crt.is_file() and ca_key.is_file()):
        key = authority.generate_key(EncryptionAlgorithm.ECDSA_P256)
        cert = authority.new_ca(f"kbootstrap-lab-{lab.name}-registry-ca", key,
                                not_before=now - timedelta(minutes=5), not_after=now + timedelta(days=3650))
        write_atomic(ca_key, key_pem(key), 0o600)
        write_atomic(ca_crt, cert_pem(cert))
    ca = authority.CertAndKey(parse_cert(ca_crt.read_bytes(), str(ca_crt)), parse_key(ca_key.read_bytes(), str(ca_key)))
    write_atomic(_trust_dir(lab.dir) / "ca.crt", ca_crt.read_bytes())
    tls_crt, tls_key = d / "tls.crt", d / "tls.key"
    if tls_crt.is_file() and tls_key.is_file():
        current = parse_cert(tls_crt.read_bytes(), str(tls_crt))
        with contextlib.suppress(x509.ExtensionNotFound):
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if [str(i) for i in san.get_values_for_type(x509.IPAddress)] == [lab.bridge_ip]:
                return
    key = authority.generate_key(EncryptionAlgorithm.ECDSA_P256)
    cert = authority.issue(
        ca, key.public_key(), Subject(f"kbootstrap-lab-{lab.name}-registry"),
        [SERVER_AUTH], AltNames.build(ips=[lab.bridge_ip]),
        not_before=now - timedelta(minutes=5), not_after=now + timedelta(days=3650),
    )
    write_atomic(tls_key, key_pem(key), 0o600)
    write_atomic(tls_crt, cert_pem(cert))


def ssl_context(lab_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path(lab_dir)))


# --- process --------------------------------------------------------------------------------------

def config(lab: LabState, storage: Path, *, readonly: bool) -> dict[str, Any]:
    d = reg_dir(lab.dir)
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": False},
            "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": readonly}},
        },
        # Only the bridge address: nothing outside the lab network reaches it.
        "http": {"addr": address(lab), "secret": secrets.token_hex(16),
                 "tls": {"certificate": str(d / "tls.crt"), "key": str(d / "tls.key")}},
    }


def _config_path(lab_dir: Path, readonly: bool) -> Path:
    return reg_dir(lab_dir) / ("config.yml" if readonly else "config-build.yml")


def find_pids(lab_dir: Path) -> list[int]:
    """This lab's registry processes, by command line (`docker-registry serve <lab dir>/registry/...`)."""
    prefix = str(reg_dir(lab_dir)) + "/"
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if len(argv) >= 3 and argv[0].endswith("docker-registry") and argv[1] == "serve" \
                and argv[2].startswith(prefix) and pid_alive(int(p.name)):
            out.append(int(p.name))
    return out


def is_running(lab: LabState) -> bool:
    return bool(find_pids(lab.dir))


def _get(lab: LabState, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(lab.bridge_ip, PORT, timeout=timeout, context=ssl_context(lab.dir))
    try:
        conn.request("GET", path, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start(lab: LabState, storage: Path, *, readonly: bool = True) -> None:
    if find_pids(lab.dir):
        return
    exe = need("docker-registry")
    cfg = _config_path(lab.dir, readonly)
    write_atomic(cfg, yaml.safe_dump(config(lab, storage, readonly=readonly), sort_keys=False), 0o600)
    log = reg_dir(lab.dir) / "registry.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([exe, "serve", str(cfg)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + READY_TIMEOUT
    why = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = f"exited with {proc.returncode}"
            break
        try:
            status, _ = _get(lab, "/v2/", timeout=1.0)
            if status == 200:
                return
            why = f"GET /v2/ answered {status}"
        except (OSError, http.client.HTTPException) as e:
            why = str(e) or type(e).__name__
        time.sleep(0.1)
    stop_dir(lab.dir)
    raise RequirementError(
        f"lab registry on {address(lab)} did not come up ({why}): {_log_tail(log)}",
        hint=f"its log: {log}",
    )


def _log_tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""
    return ""


def stop_dir(lab_dir: Path, timeout: float = 5.0) -> None:
    """Stop the lab's registry processes knowing only the lab directory."""
    pids = find_pids(lab_dir)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)


# --- storage --------------------------------------------------------------------------------------

def storage_key(images: list[Image]) -> str:
    recipe = json.dumps([STORAGE_RECIPE, sorted((i.reference, i.sha256) for i in images)])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def storage_path(images: list[Image]) -> Path:
    return rootfs.cache_root() / f"registry-{storage_key(images)}"


def push(lab: LabState, images: list[Image]) -> None:
    """skopeo copy each archive into the (writable) lab registry, verifying it with the lab CA."""
    skopeo = need("skopeo")
    policy = reg_dir(lab.dir) / "policy.json"  # our own: local archives need no signature policy
    write_atomic(policy, json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n")
    for img in images:
        try:
            run([skopeo, "--policy", str(policy), "copy", "--quiet", "--retry-times", "2",
                 "--dest-cert-dir", str(_trust_dir(lab.dir)), f"oci-archive:{img.archive}",
                 f"docker://{lab_reference(lab, img.reference)}"], timeout=PUSH_TIMEOUT)
        except RequirementError:
            raise
        except KbootstrapError as e:
            raise KbootstrapError(f"pushing {img.reference} ({img.archive}) to the lab registry: {e.message}") from None


def ensure_storage(lab: LabState, images: list[Image]) -> Path:
    """The cached registry storage holding `images`, built (by this lab's registry, writable, on its
    bridge address) when missing. Built in a temp dir and renamed, under a lock, like the rootfs."""
    final = storage_path(images)
    if (final / COMPLETE_MARK).is_file():
        return final
    rootfs.cache_root().mkdir(parents=True, exist_ok=True)
    with locked(rootfs.cache_root() / ".registry.lock"):
        if (final / COMPLETE_MARK).is_file():
            return final
        if final.exists():
            shutil.rmtree(final)
        for stale in rootfs.cache_root().glob(".registry-build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=rootfs.cache_root(), prefix=".registry-build-"))
        try:
            start(lab, tmp, readonly=False)
            try:
                push(lab, images)
            finally:
                stop_dir(lab.dir)
            write_atomic(tmp / COMPLETE_MARK, json.dumps(sorted(i.reference for i in images)) + "\n")
            os.chmod(tmp, 0o755)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def check_host() -> None:
    need("docker-registry")
    need("skopeo")


def bring_up(lab: LabState) -> None:
    """PKI, storage (built once per image set) and the read-only registry serving it."""
    ensure_pki(lab)
    images = lab_images()
    storage = ensure_storage(lab, images)
    lab.registry_images = sorted(i.reference for i in images)
    lab.registry_storage = str(storage)
    lab.save()
    start(lab, storage, readonly=True)


def status(lab: LabState) -> dict[str, Any]:
    return {
        "address": address(lab),
        "url": f"https://{address(lab)}",
        "ca": str(ca_path(lab.dir)),
        "state": "running" if is_running(lab) else "stopped",
        "storage": lab.registry_storage,
        "images": [{"image": r, "lab": lab_reference(lab, r)} for r in lab.registry_images],
    }


def manifest_status(lab: LabState, ref: str) -> int:
    """HTTP status of the image's manifest in the lab registry (200 when it is there)."""
    registry, rest = split_reference(ref)
    name, _, tag = rest.rpartition(":")
    return _get(lab, f"/v2/{registry}/{name}/manifests/{tag}")[0]
