"""The detached JWS on cluster-info, checked against HMAC-SHA256 computed here with hmac directly."""

from __future__ import annotations

import base64
import hashlib
import hmac

from bootstrap.join import jws

KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    server: https://10.0.0.1:6443
  name: ""
contexts: null
current-context: ""
kind: Config
preferences: {}
users: null
"""
TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_detached_signature_matches_an_independent_hmac() -> None:
    header = _b64url(b'{"alg":"HS256","kid":"abcdef"}')
    assert header == "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9"
    payload = _b64url(KUBECONFIG.encode())
    mac = hmac.new(TOKEN_SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    expected = f"{header}..{_b64url(mac)}"
    assert jws.compute_detached_signature(KUBECONFIG, TOKEN_ID, TOKEN_SECRET) == expected
    # go-jose pads the key to 32 bytes with zeros: HMAC does the same to short keys.
    padded = hmac.new(TOKEN_SECRET.encode().ljust(32, b"\0"), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert padded == mac


def test_verification() -> None:
    good = jws.compute_detached_signature(KUBECONFIG, TOKEN_ID, TOKEN_SECRET)
    assert jws.detached_token_is_valid(good, KUBECONFIG, TOKEN_ID, TOKEN_SECRET)
    assert not jws.detached_token_is_valid(good, KUBECONFIG, TOKEN_ID, "0123456789abcdee")
    assert not jws.detached_token_is_valid(good, KUBECONFIG + " ", TOKEN_ID, TOKEN_SECRET)
    assert not jws.detached_token_is_valid(good, KUBECONFIG, "abcdeg", TOKEN_SECRET)
    assert "=" not in good and good.count(".") == 2 and ".." in good


def test_cluster_info_configmap_is_signed_per_token() -> None:
    kc = jws.cluster_info_kubeconfig("https://10.0.0.1:6443", b"-----BEGIN CERTIFICATE-----\n")
    assert 'name: ""' in kc and "server: https://10.0.0.1:6443" in kc
    cm = jws.cluster_info_configmap(kc, {TOKEN_ID: TOKEN_SECRET, "zzzzzz": "0000000000000000"})
    data = cm["data"]
    assert isinstance(data, dict)
    assert set(data) == {"kubeconfig", "jws-kubeconfig-abcdef", "jws-kubeconfig-zzzzzz"}
    assert jws.detached_token_is_valid(data["jws-kubeconfig-abcdef"], kc, TOKEN_ID, TOKEN_SECRET)
