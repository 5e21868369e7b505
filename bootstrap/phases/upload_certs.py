"""upload-certs: the shared CA files, encrypted under the certificate key, in kube-system/kubeadm-certs,
owned by a 2 h bootstrap token so that they go when it expires (kubeadm phases/copycerts), on the
first control plane. Runs only when asked (`--upload-certs`), as in kubeadm.

The certificate key is the user's (`--certificate-key`) or made once and kept in a 0600 file next to
the control machine's CAs (single node: in the cert dir), so a rerun with the same files changes
nothing: the Secret there decrypts to what we would upload and its owner token is still valid.
The key is never printed or logged; the report names the file that holds it.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import FIRST_CONTROL_PLANE, Phase
from bootstrap.engine.result import Status
from bootstrap.errors import KbootstrapError, PhaseError
from bootstrap.join import copycerts
from bootstrap.join.tokens import SECRET_PREFIX, from_secret, generate_token
from bootstrap.phases.cluster_api import apply_objects, cluster_api, offline
from bootstrap.render.apiobjects import uploadcerts
from bootstrap.transport.local import LocalTarget

KEY_FILE = "certificate-key"
# A Secret whose owner token expires sooner than this is uploaded again (a join may take a while).
MIN_REMAINING = timedelta(minutes=30)


@dataclass
class CertificateUpload:
    """The run's upload-certs settings (a RunState slot; the workflow fills it from the flags)."""

    enabled: bool = False
    key_hex: str = ""  # --certificate-key; empty: the saved key, else a new one
    key_dir: Path | None = None  # where a made key is kept (the control machine's PKI dir)
    key_path: str = ""  # set once known: what the report and show-join-command name


def certificate_key(ctx: RunContext, upload: CertificateUpload) -> bytes:
    """The key to encrypt with: the flag's, the saved one, or a new one saved (0600, atomic)."""
    if upload.key_hex:
        upload.key_path = "--certificate-key"
        return copycerts.parse_certificate_key(upload.key_hex)
    if upload.key_dir is not None:
        path = upload.key_dir / KEY_FILE
        upload.key_path = str(path)
        if path.exists():
            return copycerts.parse_certificate_key(path.read_text())
        key = os.urandom(copycerts.CERTIFICATE_KEY_SIZE)
        LocalTarget(upload.key_dir, name="control-machine").write(f"/{KEY_FILE}", binascii.hexlify(key) + b"\n", 0o600)
        return key
    remote = f"{ctx.spec.cert_dir.rstrip('/')}/{KEY_FILE}"
    upload.key_path = f"{ctx.name}:{remote}"
    existing = ctx.read(remote)
    if existing is not None:
        return copycerts.parse_certificate_key(existing.decode(errors="replace"))
    key = os.urandom(copycerts.CERTIFICATE_KEY_SIZE)
    ctx.ensure_file(remote, binascii.hexlify(key) + b"\n", 0o600, detail="the new certificate key (never printed)")
    return key


def run(ctx: RunContext) -> None:
    assert ctx.run is not None
    upload = ctx.run.slot(CertificateUpload)
    if not upload.enabled:
        ctx.skip(uploadcerts.KUBEADM_CERTS, "not asked for: pass --upload-certs (kubeadm's default is off)")
        return
    wanted = uploadcerts.files_to_upload(ctx.spec)
    found = ctx.target.read_many(list(dict.fromkeys(wanted.values())))
    files = {name: (s.content if (s := found[path]) is not None else None) for name, path in wanted.items()}
    if files.get("ca.key") is None:
        raise PhaseError(f"no {ctx.spec.cert_dir}/ca.key on {ctx.name}: nothing to upload",
                         hint="run the certs phase first (upload-certs needs the CA keys on the control plane)")
    why = offline(ctx)
    key = certificate_key(ctx, upload) if why is None or upload.key_hex else b"\0" * copycerts.CERTIFICATE_KEY_SIZE
    if why is not None:
        ctx.record(f"Secret kube-system/{uploadcerts.KUBEADM_CERTS}", Status.CREATED if ctx.dry_run else Status.SKIPPED,
                   f"{why}: {len(files)} files, encrypted under the certificate key")
        return
    if _current(ctx, key, files):
        ctx.record(f"Secret kube-system/{uploadcerts.KUBEADM_CERTS}", Status.UNCHANGED,
                   f"holds these files under the key in {upload.key_path}")
        return
    now = datetime.now(UTC)
    token = generate_token()
    apply_objects(ctx, [uploadcerts.upload_certs_token(token, now)])
    owner = cluster_api(ctx).get("v1", "Secret", token.secret_name, "kube-system")
    uid = str(((owner or {}).get("metadata") or {}).get("uid") or "")
    if not uid:
        raise PhaseError(f"the token Secret {token.secret_name} was created but cannot be read back")
    apply_objects(ctx, uploadcerts.kubeadm_certs_objects(files, key, owner_token=token, owner_uid=uid))
    ctx.record("certificate key", Status.UNCHANGED, f"kept in {upload.key_path} (0600); never printed")


def _current(ctx: RunContext, key: bytes, files: dict[str, bytes | None]) -> bool:
    """Whether kubeadm-certs already holds exactly these files under this key, owned by a token
    that stays valid a while longer."""
    api = cluster_api(ctx)
    secret = api.get("v1", "Secret", uploadcerts.KUBEADM_CERTS, "kube-system")
    if secret is None:
        return False
    owners = (secret.get("metadata") or {}).get("ownerReferences") or []
    owner_name = next((str(o.get("name")) for o in owners if str(o.get("name", "")).startswith(SECRET_PREFIX)), "")
    token_secret = api.get("v1", "Secret", owner_name, "kube-system") if owner_name else None
    try:
        expires = from_secret(token_secret).expires if token_secret is not None else None
        data = secret.get("data") or {}
        for name, content in files.items():
            blob = base64.b64decode(data.get(name) or "")
            if (copycerts.decrypt(key, blob) if blob else None) != (content or None):
                return False
    except (KbootstrapError, binascii.Error, ValueError):
        return False
    return expires is not None and expires - datetime.now(UTC) > MIN_REMAINING


PHASE = Phase("upload-certs", "Upload certificates to kubeadm-certs", run, hosts=FIRST_CONTROL_PLANE,
              needs_api_server=True)
