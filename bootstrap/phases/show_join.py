"""show-join-command: the text `kubeadm init` ends with, on the first control plane, with the token
and certificate key withheld (kubeadm's --skip-token-print and --skip-certificate-key-print): a
secret never goes into a report or a log. `kbootstrap token create --print-join-command` prints a
working command when one is wanted, and `kbootstrap join -i` needs none."""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import FIRST_CONTROL_PLANE, Phase
from bootstrap.engine.result import Status
from bootstrap.errors import PhaseError
from bootstrap.phases.bootstrap_token import JoinToken
from bootstrap.phases.cluster_api import ADMIN_CONF, offline
from bootstrap.phases.upload_certs import CertificateUpload
from bootstrap.pki.authority import spki_sha256
from bootstrap.pki.store import parse_cert
from bootstrap.render.apiobjects.joincommand import WITHHELD, show_join_command
from bootstrap.render.kubeconfig import parse_kubeconfig

JOIN_NOTE = "join"  # RunResult.notes: the closing text, secrets withheld
PRINT_HINT = "kbootstrap token create --print-join-command  (on a control plane: a working join command)"


def run(ctx: RunContext) -> None:
    assert ctx.run is not None
    admin = ctx.read(ADMIN_CONF)
    if admin is None and offline(ctx) is not None:
        ctx.skip("join command", f"{offline(ctx)}; no {ADMIN_CONF} to take the endpoint and CA from")
        return
    if admin is None:
        raise PhaseError(f"no {ADMIN_CONF} on {ctx.name}", hint="run the kubeconfig phase first")
    kc = parse_kubeconfig(admin, f"{ctx.name}:{ADMIN_CONF}")
    if kc.ca_pem is None:
        raise PhaseError(f"{ctx.name}:{ADMIN_CONF} has no certificate-authority-data")
    ca_hash = spki_sha256(parse_cert(kc.ca_pem, f"{ctx.name}:{ADMIN_CONF}"))
    joining = ctx.run.slot(JoinToken)
    upload = ctx.run.slot(CertificateUpload)
    tokens = [str(t.token) for t in joining.tokens] or [WITHHELD]
    text = show_join_command(
        endpoint=kc.server.removeprefix("https://").rstrip("/"), tokens=tokens, ca_cert_hashes=[ca_hash],
        control_plane_endpoint=bool(ctx.spec.control_plane_endpoint), upload_certs=upload.enabled,
        certificate_key=WITHHELD if upload.enabled else "", skip_token_print=True, skip_certificate_key_print=True,
    )
    ctx.run.result.notes[JOIN_NOTE] = {"text": text, "hint": PRINT_HINT,
                                       "certificate_key_file": upload.key_path or None}
    ctx.record("join command", Status.UNCHANGED, f"CA hash {ca_hash}; token and key withheld")


PHASE = Phase("show-join-command", "Show the join command for control-plane and worker node", run,
              hosts=FIRST_CONTROL_PLANE, needs_api_server=True)
