"""upload-certs bundle: AES-256-GCM (nonce || ciphertext || tag), kubeadm's key names; a separate
AES-GCM reader here decrypts what the module wrote, and the module reads what this test wrote."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bootstrap.errors import PKIError, UsageError
from bootstrap.join import copycerts as cc
from bootstrap.spec.model import ClusterSpec, ExternalEtcd, NodeRegistration

KEY = bytes(range(32))


def _reader(key: bytes, blob: bytes) -> bytes:
    nonce, rest = blob[:12], blob[12:]
    return AESGCM(key).decrypt(nonce, rest, None)


def test_encrypt_layout_is_nonce_ciphertext_tag() -> None:
    blob = cc.encrypt(KEY, b"hello")
    assert len(blob) == 12 + 5 + 16
    assert _reader(KEY, blob) == b"hello"
    assert cc.encrypt(KEY, b"hello")[:12] != blob[:12]  # a fresh nonce each time


def test_module_decrypts_a_blob_made_here() -> None:
    nonce = os.urandom(12)
    blob = nonce + AESGCM(KEY).encrypt(nonce, b"ca key bytes", None)
    assert cc.decrypt(KEY, blob) == b"ca key bytes"
    with pytest.raises(PKIError, match="message authentication failed"):
        cc.decrypt(bytes(32), blob)
    with pytest.raises(PKIError, match="too small"):
        cc.decrypt(KEY, b"short")


def _spec(**kw: object) -> ClusterSpec:
    return ClusterSpec(advertise_address="10.0.0.1", node=NodeRegistration(name="cp1"), **kw)  # type: ignore[arg-type]


def test_key_names_are_kubeadms() -> None:
    files = cc.files_to_transfer(_spec())
    assert sorted(files.values()) == sorted(["ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.pub",
                                             "sa.key", "etcd-ca.crt", "etcd-ca.key"])
    assert files["/etc/kubernetes/pki/etcd/ca.key"] == "etcd-ca.key"
    ext = cc.files_to_transfer(_spec(etcd_local=None, etcd_external=ExternalEtcd(
        endpoints=("https://e:2379",), ca_file="/e/ca.crt", cert_file="/e/c.crt", key_file="/e/c.key")))
    assert ext["/e/ca.crt"] == "external-etcd-ca.crt" and ext["/e/c.key"] == "external-etcd.key"
    assert "etcd-ca.crt" not in ext.values()


def test_secret_round_trip_with_a_missing_file() -> None:
    files = {"ca.crt": b"CA", "ca.key": b"KEY", "sa.pub": None}
    secret = cc.kubeadm_certs_secret(files, KEY, owner_token_secret="bootstrap-token-abcdef")
    assert secret["metadata"]["name"] == "kubeadm-certs" and secret["type"] == "Opaque"
    assert secret["metadata"]["ownerReferences"][0] == {"apiVersion": "v1", "kind": "Secret",
                                                        "name": "bootstrap-token-abcdef", "controller": True}
    assert secret["data"]["sa.pub"] == ""
    assert _reader(KEY, base64.b64decode(secret["data"]["ca.key"])) == b"KEY"
    out = cc.decrypt_secret(secret, KEY, {"/p/ca.crt": "ca.crt", "/p/ca.key": "ca.key", "/p/sa.pub": "sa.pub"})
    assert out == {"/p/ca.crt": b"CA", "/p/ca.key": b"KEY"}  # empty values are not written
    with pytest.raises(PKIError, match="couldn't find required certificate or key in Secret"):
        cc.decrypt_secret(secret, KEY, {"/p/front-proxy-ca.crt": "front-proxy-ca.crt"})


def test_certificate_key_parsing() -> None:
    assert cc.parse_certificate_key(KEY.hex()) == KEY
    with pytest.raises(UsageError, match="32 bytes"):
        cc.parse_certificate_key("abcd")
    with pytest.raises(UsageError, match="not hex"):
        cc.parse_certificate_key("zz" * 32)
