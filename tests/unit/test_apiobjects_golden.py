"""Our API objects against kubeadm's own, object for object and in kubeadm's order.

The fixtures are kubeadm v1.37.2 and v1.36.3 --dry-run output (tests/golden/apiobjects, see
capture.py there) for two configs. Only what kubeadm draws at random or from the clock is carried
over into our render rather than compared: the upload-certs token (its id and secret), `now`
(taken from kubeadm's expiration minus the TTL), and the encrypted certificate values (both sides
are decrypted and compared as plaintext). The CA certificate is the one kubeadm made (fixture).
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubeadm_golden import (
    CASES,
    CERTIFICATE_KEYS,
    CUSTOM_KUBE_PROXY,
    VERSIONS,
    actions,
    ca_pem,
    created,
    fixture,
    spec_for,
    without_go_zero_values,
)

from bootstrap.join import copycerts
from bootstrap.join.tokens import CERT_TOKEN_TTL, Token, parse_rfc3339
from bootstrap.pki.authority import spki_sha256
from bootstrap.render import kubelet
from bootstrap.render.apiobjects import (
    bootstraptoken,
    coredns,
    joincommand,
    kubeproxy,
    markcontrolplane,
    phases,
    uploadcerts,
    uploadconfig,
)
from bootstrap.render.apiobjects.common import minor
from bootstrap.spec.model import ClusterSpec

CASE_PARAMS = [pytest.param(v, c, id=f"{v}-{c}") for v in VERSIONS for c in CASES]


def node_kubelet_config(spec: ClusterSpec) -> dict[str, Any]:
    config, _ = kubelet.kubelet_config(spec, systemd_resolved=False)  # the lab machine runs no systemd-resolved
    return config


def names(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objs]


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_upload_config(version: str, case: str) -> None:
    spec = spec_for(version, case)
    theirs = created(version, case, "upload-config")
    ours = uploadconfig.upload_config_objects(spec, node_kubelet_config(spec))
    assert names(ours) == names(theirs)
    # ClusterConfiguration text byte for byte, the kubelet-config hash included.
    for mine, kubeadm in zip(ours, theirs, strict=True):
        assert mine == kubeadm, mine["metadata"]["name"]
    assert uploadconfig.cri_socket_annotation_patch(spec) is None  # v1.36+: no Node PATCH in this phase


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_upload_certs(version: str, case: str) -> None:
    spec = spec_for(version, case)
    key = bytes.fromhex(CERTIFICATE_KEYS[case])
    token_secret, certs_secret, role, binding = created(version, case, "upload-certs")
    data = {k: base64.b64decode(v).decode() for k, v in token_secret["data"].items()}
    token = Token(data["token-id"], data["token-secret"])
    now = parse_rfc3339(data["expiration"]) - CERT_TOKEN_TTL
    assert uploadcerts.upload_certs_token(token, now) == token_secret

    # kubeadm read placeholder files (capture.sh) from the spec's cert dir.
    paths = uploadcerts.files_to_upload(spec)
    files = {name: f"placeholder for {path.removeprefix(spec.cert_dir + '/')}\n".encode() for name, path in paths.items()}
    ours = uploadcerts.kubeadm_certs_objects(files, key, owner_token=token, owner_uid="")  # dry-run: no UID
    assert names(ours) == names([certs_secret, role, binding])
    assert ours[1:] == [role, binding]
    for secret in (ours[0], certs_secret):  # kubeadm's AES-GCM layout is ours: each decrypts the other's way
        assert copycerts.decrypt_secret(secret, key, {name: name for name in files}) == files
    assert {**ours[0], "data": None} == {**certs_secret, "data": None}


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_bootstrap_token(version: str, case: str) -> None:
    spec = spec_for(version, case)
    theirs = created(version, case, "bootstrap-token")
    first = {k: base64.b64decode(v).decode() for k, v in theirs[0]["data"].items()}
    now = parse_rfc3339(first["expiration"]) - (spec.bootstrap_tokens[0].ttl or timedelta(0))
    tokens = bootstraptoken.spec_tokens(spec)
    ours = bootstraptoken.bootstrap_token_objects(spec, tokens, ca_pem(version, case), now)
    assert names(ours) == names(theirs)
    for mine, kubeadm in zip(ours, theirs, strict=True):
        assert mine == kubeadm, mine["metadata"]["name"]
    printed = [ln for ln in fixture(version, case, "bootstrap-token").splitlines() if ln.startswith("[bootstrap-token]")]
    assert printed[:2] == bootstraptoken.bootstrap_token_messages(tokens)


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_coredns(version: str, case: str) -> None:
    spec = spec_for(version, case)
    theirs = [without_go_zero_values(o) for o in created(version, case, "addon-coredns")]
    ours = coredns.coredns_objects(spec)
    assert names(ours) == names(theirs)
    for mine, kubeadm in zip(ours, theirs, strict=True):
        assert mine == kubeadm, mine["metadata"]["name"]


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_kube_proxy(version: str, case: str) -> None:
    spec = spec_for(version, case)
    theirs = [without_go_zero_values(o) for o in created(version, case, "addon-kube-proxy")]
    ours = kubeproxy.kube_proxy_objects(spec, CUSTOM_KUBE_PROXY if case == "custom" else None)
    assert names(ours) == names(theirs)
    for mine, kubeadm in zip(ours, theirs, strict=True):
        assert mine == kubeadm, mine["metadata"]["name"]


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_mark_control_plane_messages(version: str, case: str) -> None:
    spec = spec_for(version, case)
    printed = [ln for ln in fixture(version, case, "mark-control-plane").splitlines()
               if ln.startswith("[mark-control-plane]")]
    assert printed == markcontrolplane.mark_control_plane_messages(spec)
    # The dry-run Node has the hostname label, so kubeadm went on to PATCH it.
    got = next(a for a in actions(version, case, "mark-control-plane") if a.verb == "GET").obj
    assert got is not None and markcontrolplane.node_ready_to_mark(got)


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_show_join_command(version: str, case: str) -> None:
    spec = spec_for(version, case)
    ca = x509.load_pem_x509_certificate(ca_pem(version, case, "show-join-command.ca.crt"))
    text = joincommand.show_join_command(
        endpoint=spec.control_plane_url.removeprefix("https://"),
        tokens=[t.token for t in spec.bootstrap_tokens], ca_cert_hashes=[spki_sha256(ca)],
        control_plane_endpoint=bool(spec.control_plane_endpoint), upload_certs=True,
        certificate_key=CERTIFICATE_KEYS[case], kubeconfig_path="/tmp/kubeadm-dryrun/admin.conf")
    # capture.sh keeps the text from its first "Your Kubernetes..." line: without the blank line before.
    assert text.removeprefix("\n") == fixture(version, case, "show-join-command")


@pytest.mark.parametrize("version", VERSIONS)
def test_init_phases_as_kubeadm_lists_them(version: str) -> None:
    listing = fixture(version, "", "init-help").split("```\n", 1)[1].split("```", 1)[0]
    theirs = []
    for line in listing.splitlines():
        name, _, help_ = line.strip().partition(" ")
        theirs.append((line.startswith("  "), name, help_.strip()))
    spec = spec_for(version, "basic")
    api = {p.name for p in phases.api_phases(minor(spec))}
    ours = []
    for p in phases.init_phases(minor(spec)):
        if not p.listed:
            continue
        ours.append((False, p.name, p.help))
        ours += [(True, "/" + c.name, c.help) for c in p.children if c.listed]
    # Sub-phases of the phases before the API ones live in bootstrap/phases/tree.py.
    theirs_here = []
    parent = ""
    for nested, name, help_ in theirs:
        parent = parent if nested else name
        if not nested or parent in api:
            theirs_here.append((nested, name, help_))
    assert ours == theirs_here


@pytest.mark.parametrize(("version", "case"), CASE_PARAMS)
def test_print_manifest_templates(version: str, case: str) -> None:
    """`--print-manifest` prints kubeadm's templates before decoding: the same objects, except what only
    the API path adds (the kube-proxy ConfigMap's hash, proxy variables) and a literal readOnly: false."""
    spec = spec_for(version, case)
    printed = [d for d in yaml.safe_load_all(fixture(version, case, "print-coredns")) if d]
    assert by_key(printed) == by_key(coredns.coredns_objects(spec))
    printed = [d for d in yaml.safe_load_all(fixture(version, case, "print-kube-proxy")) if d]
    ours = kubeproxy.kube_proxy_objects(spec, CUSTOM_KUBE_PROXY if case == "custom" else None)
    ours[0]["metadata"].pop("annotations", None)
    container = by_key(printed)[("DaemonSet", "kube-proxy")]["spec"]["template"]["spec"]["containers"][0]
    assert {"mountPath": "/run/xtables.lock", "name": "xtables-lock", "readOnly": False} in container["volumeMounts"]
    container["volumeMounts"] = [{k: val for k, val in m.items() if val is not False} for m in container["volumeMounts"]]
    assert by_key(printed) == by_key(ours)


def by_key(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}
