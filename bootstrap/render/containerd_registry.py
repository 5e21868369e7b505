"""containerd registry mirrors: one hosts.toml per registry under containerd's `config_path`.

Input is Kubespray's `containerd_registries_mirrors` inventory variable, same shape and defaults as
Kubespray's roles/container-engine/containerd (templates/hosts.toml.j2, docs/CRI/containerd.md):

    containerd_registries_mirrors:
      - prefix: registry.k8s.io            # the registry the images are named after
        server: https://registry.k8s.io    # optional fallback; default "https://" + prefix
        mirrors:
          - host: https://10.0.0.1:5000
            capabilities: ["pull", "resolve"]   # a string or a list
            skip_verify: false                   # default false
            override_path: false                 # default false
            auth: {username: u, password: p}     # optional: a Basic authorization header

Each entry becomes `<config_path>/<prefix>/hosts.toml` (Kubespray writes the same path). Ours on top:
`kbootstrap_registry_ca` (a PEM CA certificate; the caller reads the file the variable names) is
written beside each hosts.toml and named as the `ca` of every https mirror, so a mirror with a
certificate from a private CA is verified against it (containerd adds it to the system roots for
that host). Unlike Kubespray, a mirror without `capabilities` gets pull and resolve rather than an
error. containerd reads these files without a restart; its config.toml must name `config_path`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from bootstrap.errors import ConfigError

MIRRORS_VAR = "containerd_registries_mirrors"
CA_VAR = "kbootstrap_registry_ca"
CONFIG_PATH = "/etc/containerd/certs.d"
CA_FILE = "kbootstrap-registry-ca.crt"
CAPABILITIES = ("pull", "resolve", "push")
DEFAULT_CAPABILITIES = ("pull", "resolve")
# A registry host[:port], or containerd's `_default` (applies to every registry without its own dir).
_PREFIX_RE = re.compile(
    r"^(_default|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)$"
)
_MIRROR_KEYS = {"host", "capabilities", "skip_verify", "override_path", "auth"}
_ENTRY_KEYS = {"prefix", "server", "mirrors"}


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML ones)."""
    return json.dumps(value, ensure_ascii=False)


def _bool(value: Any, where: str) -> bool:
    # Inventories written by hand say `false`, "false" or "no"; Kubespray lowercases str(value).
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
        return value.strip().lower() in ("true", "yes")
    raise ConfigError(where, f"{value!r} is not a boolean")


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, "must be a URL like https://HOST[:PORT][/PATH]")
    u = urlsplit(value.strip())
    if u.scheme not in ("http", "https") or not u.netloc or u.query or u.fragment:
        raise ConfigError(where, f"{value!r} is not an http(s) URL", hint="e.g. https://10.0.0.1:5000")
    return value.strip()


def _capabilities(value: Any, where: str) -> list[str]:
    if value is None:
        return list(DEFAULT_CAPABILITIES)
    caps = [value] if isinstance(value, str) else value
    if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
        raise ConfigError(where, "must be a list of pull, resolve, push")
    bad = [c for c in caps if c not in CAPABILITIES]
    if bad:
        raise ConfigError(where, f"unknown capability {bad[0]!r}", hint="use pull, resolve, push")
    return list(dict.fromkeys(caps))


def _auth_header(value: Any, where: str) -> str:
    if not isinstance(value, Mapping) or not isinstance(value.get("username"), str) \
            or not isinstance(value.get("password"), str):
        raise ConfigError(where, "must be a mapping with username and password")  # values never shown
    token = base64.b64encode(f"{value['username']}:{value['password']}".encode()).decode()
    return f"Basic {token}"


def check_ca(ca_pem: bytes, where: str = CA_VAR) -> bytes:
    """The CA as given, once it parses as one or more PEM certificates."""
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        certs = []
    if not certs:
        raise ConfigError(where, "is not a PEM certificate")
    return ca_pem


def render_hosts_toml(entry: Mapping[str, Any], where: str, ca_path: str | None = None) -> str:
    """One registry's hosts.toml. `ca_path` (on the node) becomes the `ca` of each https mirror."""
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "unknown key", hint="keys: prefix, server, mirrors")
    prefix = str(entry["prefix"])
    lines = []
    server = entry.get("server")
    if server is not None:
        lines.append(f"server = {_s(_url(server, f'{where}.server'))}")
    elif prefix != "_default":
        lines.append(f"server = {_s('https://' + prefix)}")
    mirrors = entry.get("mirrors")
    if not isinstance(mirrors, list) or not mirrors:
        raise ConfigError(f"{where}.mirrors", "must be a non-empty list of {host: URL, ...}")
    seen: set[str] = set()
    for j, mirror in enumerate(mirrors):
        mw = f"{where}.mirrors[{j}]"
        if not isinstance(mirror, Mapping):
            raise ConfigError(mw, "must be a mapping with host, capabilities, ...")
        unknown = sorted(set(mirror) - _MIRROR_KEYS)
        if unknown:
            raise ConfigError(f"{mw}.{unknown[0]}", "unknown key",
                              hint="keys: host, capabilities, skip_verify, override_path, auth")
        host = _url(mirror.get("host"), f"{mw}.host")
        if host in seen:
            raise ConfigError(f"{mw}.host", f"{host} is listed twice")
        seen.add(host)
        caps = _capabilities(mirror.get("capabilities"), f"{mw}.capabilities")
        lines += [
            "",
            f"[host.{_s(host)}]",
            f"  capabilities = [{', '.join(_s(c) for c in caps)}]",
            f"  skip_verify = {str(_bool(mirror.get('skip_verify', False), f'{mw}.skip_verify')).lower()}",
            f"  override_path = {str(_bool(mirror.get('override_path', False), f'{mw}.override_path')).lower()}",
        ]
        if ca_path is not None and host.startswith("https://"):
            lines.append(f"  ca = {_s(ca_path)}")
        if mirror.get("auth") is not None:
            lines += [f"  [host.{_s(host)}.header]",
                      f"    authorization = {_s(_auth_header(mirror['auth'], f'{mw}.auth'))}"]
    return "# Managed by kbootstrap: registry mirrors (containerd_registries_mirrors).\n" + "\n".join(lines) + "\n"


def render(mirrors: Any, *, ca_pem: bytes | None = None, config_path: str = CONFIG_PATH,
           where: str = MIRRORS_VAR) -> dict[str, bytes]:
    """{path on the node: content} for every registry in `mirrors` (the inventory value; None or []
    gives no files). With `ca_pem` (the content of kbootstrap_registry_ca), each registry directory
    also gets that CA, referenced by its https mirrors."""
    if mirrors is None:
        return {}
    if not isinstance(mirrors, list):
        raise ConfigError(where, "must be a list of {prefix: REGISTRY, mirrors: [...]}")
    if ca_pem is not None:
        check_ca(ca_pem)
    out: dict[str, bytes] = {}
    for i, entry in enumerate(mirrors):
        ew = f"{where}[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("prefix"), str):
            raise ConfigError(f"{ew}.prefix", "each entry needs a prefix (the registry host[:port])")
        prefix = entry["prefix"].strip()
        if not _PREFIX_RE.match(prefix):
            raise ConfigError(f"{ew}.prefix", f"{prefix!r} is not a registry host[:port]",
                              hint="e.g. registry.k8s.io or 10.0.0.1:5000")
        d = f"{config_path.rstrip('/')}/{prefix}"
        if f"{d}/hosts.toml" in out:
            raise ConfigError(f"{ew}.prefix", f"{prefix} is listed twice")
        ca_path = f"{d}/{CA_FILE}" if ca_pem is not None else None
        out[f"{d}/hosts.toml"] = render_hosts_toml({**entry, "prefix": prefix}, ew, ca_path).encode()
        if ca_pem is not None and ca_path is not None:
            out[ca_path] = ca_pem
    return out


def file_mode(path: str) -> int:
    """Kubespray's modes: hosts.toml 0640 (it may carry an authorization header), the CA 0644."""
    return 0o640 if path.endswith("/hosts.toml") else 0o644
