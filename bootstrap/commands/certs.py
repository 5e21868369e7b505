"""`kbootstrap certs`: check-expiration, renew, certificate-key - kubeadm's `certs` commands.

check-expiration and renew read the certificates on disk, never the cluster: renewals reuse the
subject, SANs and usages of the existing certificate, as `kubeadm certs renew` does.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from bootstrap.commands.common import emit, output_option, rootfs_option
from bootstrap.durations import short_human_duration
from bootstrap.engine.context import RunContext
from bootstrap.errors import UsageError
from bootstrap.pki import catalog
from bootstrap.pki.store import Expiry, cert_expiry, renew_leaf, target_reader
from bootstrap.render import kubeconfig as kc
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import DEFAULT_CERT_DIR, KUBERNETES_DIR, ClusterSpec
from bootstrap.transport.local import LocalTarget

RESTART_REMINDER = (
    "Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
    "kube-scheduler and etcd, so that they can use the new certificates."
)
_EXPIRY_API = {"kind": "CertificateExpirationInfo", "apiVersion": "output.kubeadm.k8s.io/v1alpha3"}


# ---- shared plumbing ------------------------------------------------------------------------------
def load_spec(config: str | None, cert_dir: str | None) -> ClusterSpec:
    """The spec from --config (and --cert-dir). Node facts are irrelevant here: harmless defaults."""
    defaults = {"advertise_address": ("127.0.0.1", "default"), "node.name": ("localhost", "default")}
    spec = build_spec({}, config, defaults=defaults)
    # --cert-dir wins over the file's certificatesDir, as in kubeadm's certs commands.
    return spec.model_copy(update={"cert_dir": cert_dir}) if cert_dir else spec


@dataclass(frozen=True)
class Renewable:
    name: str
    long_name: str
    renew: Callable[[RunContext, str], str]  # (ctx, kubeconfig_dir) -> renewed|missing|external
    expiry: Callable[[Callable[[str], bytes | None], str, str], Expiry]  # (read, kubeconfig_dir, cert_dir)


def renewables(spec: ClusterSpec, read: Callable[[str], bytes | None], explicit_config: bool) -> list[Renewable]:
    """kubeadm's renewal list, sorted by name; etcd certs only with local etcd (guessed from disk w/o --config)."""
    certs = [c for c in catalog.certs_for(spec) if not c.is_ca]
    if not explicit_config and read(catalog.ETCD_CA.cert_path(spec.cert_dir)) is None:
        certs = [c for c in certs if not c.uses_etcd_ca]
    out = [_leaf_item(c) for c in certs] + [_kubeconfig_item(k) for k in kc.renewable(spec)]
    return sorted(out, key=lambda r: r.name)


def _leaf_item(cdef: catalog.CertDef) -> Renewable:
    def renew(ctx: RunContext, _kdir: str) -> str:
        return renew_leaf(ctx, cdef)

    def expiry(read: Callable[[str], bytes | None], _kdir: str, cert_dir: str) -> Expiry:
        return cert_expiry(read, cdef, cert_dir)

    return Renewable(cdef.name, cdef.long_name, renew, expiry)


def _kubeconfig_item(kdef: kc.KubeconfigDef) -> Renewable:
    def renew(ctx: RunContext, kdir: str) -> str:
        return kc.renew_kubeconfig(ctx, kdef, kdir)

    def expiry(read: Callable[[str], bytes | None], kdir: str, cert_dir: str) -> Expiry:
        return kc.kubeconfig_expiry(read, kdef, kdir, cert_dir)

    return Renewable(kdef.file, kdef.renew_long_name, renew, expiry)


def tabwrite(lines: list[str], *, minwidth: int = 10, padding: int = 3) -> str:
    """Go text/tabwriter (padchar ' ', no flags): tab-terminated cells aligned per column block.

    A block is a run of consecutive lines that all have a terminated cell in that column; its width
    is the widest cell + padding, at least minwidth. The last cell of a line is never padded.
    """
    rows = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * (len(r) - 1) for r in rows]
    max_cols = max((len(r) - 1 for r in rows), default=0)
    for col in range(max_cols):
        i = 0
        while i < len(rows):
            if len(rows[i]) - 1 <= col:
                i += 1
                continue
            j = i
            while j < len(rows) and len(rows[j]) - 1 > col:
                j += 1
            width = max([minwidth] + [len(rows[k][col]) + padding for k in range(i, j)])
            for k in range(i, j):
                widths[k][col] = width
            i = j
    out = []
    for row, w in zip(rows, widths, strict=True):
        out.append("".join(cell.ljust(w[c]) for c, cell in enumerate(row[:-1])) + row[-1])
    return "\n".join(out)


def _go_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%b %d, %Y %H:%M UTC")


def _yes_no(flag: bool) -> str:
    return f"{'yes' if flag else 'no':<8}"


def expiration_text(certs: list[Expiry], cas: list[Expiry], now: datetime) -> str:
    lines = ["CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED"]
    for e in certs:
        if e.not_after is None:
            lines.append(f"!MISSING! {e.name}\t\t\t\t")
        else:
            lines.append(f"{e.name}\t{_go_time(e.not_after)}\t{short_human_duration(e.not_after - now)}\t"
                         f"{e.ca_name}\t{_yes_no(e.externally_managed)}")
    lines.append("")
    lines.append("CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
    for e in cas:
        if e.not_after is None:
            lines.append(f"!MISSING! {e.name}\t\t\t")
        else:
            lines.append(f"{e.name}\t{_go_time(e.not_after)}\t{short_human_duration(e.not_after - now)}\t"
                         f"{_yes_no(e.externally_managed)}")
    return tabwrite(lines)


def _expiry_json(e: Expiry, now: datetime, with_ca: bool) -> dict[str, Any]:
    if e.not_after is None:
        return {"name": e.name, "expirationDate": None, "externallyManaged": e.externally_managed, "missing": True}
    out: dict[str, Any] = {
        "name": e.name,
        "expirationDate": e.not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "residualTime": int((e.not_after - now).total_seconds()),
    }
    if with_ca and e.ca_name:
        out["caName"] = e.ca_name
    out["externallyManaged"] = e.externally_managed
    return out


def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--kubeconfig-dir", default=KUBERNETES_DIR, show_default=True,
                      help="Where the kubeconfig files are.")(fn)
    fn = click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                      help="Path to a kubeadm configuration file.")(fn)
    fn = click.option("--cert-dir", default=None, help=f"Where the certificates are [default: {DEFAULT_CERT_DIR}].")(fn)
    return rootfs_option(fn)


# ---- commands -------------------------------------------------------------------------------------
@click.group("certs", help="Commands related to handling Kubernetes certificates")
def certs() -> None:
    pass


@certs.command("check-expiration", help="Check certificates expiration for a Kubernetes cluster")
@_common_options
@output_option
def check_expiration(rootfs: str | None, cert_dir: str | None, config: str | None, kubeconfig_dir: str,
                     output: str) -> None:
    spec = load_spec(config, cert_dir)
    read = target_reader(LocalTarget(rootfs or "/"))
    now = datetime.now(UTC)
    items = renewables(spec, read, config is not None)
    cert_rows = [r.expiry(read, kubeconfig_dir, spec.cert_dir) for r in items]
    with_etcd = any(r.name.startswith("etcd-") for r in items)
    ca_names = [n for n in catalog.CA_NAMES if n != "etcd-ca" or with_etcd]
    ca_rows = [cert_expiry(read, catalog.get(n), spec.cert_dir) for n in ca_names]
    ca_rows = [Expiry(e.name, e.not_after, "", e.externally_managed) for e in ca_rows]
    data = {
        **_EXPIRY_API,
        "certificates": [_expiry_json(e, now, True) for e in cert_rows],
        "certificateAuthorities": [_expiry_json(e, now, False) for e in ca_rows],
    }
    emit(output, data, lambda: expiration_text(cert_rows, ca_rows, now))


@certs.command("renew", help="Renew certificates for a Kubernetes cluster: NAME is `all` or one of the "
               "certificates listed by check-expiration")
@click.argument("name")
@_common_options
@output_option
def renew(name: str, rootfs: str | None, cert_dir: str | None, config: str | None, kubeconfig_dir: str,
          output: str) -> None:
    spec = load_spec(config, cert_dir)
    target = LocalTarget(rootfs or "/")
    items = renewables(spec, target_reader(target), config is not None)
    if name != "all":
        items = [r for r in items if r.name == name]
        if not items:
            known = ", ".join(["all", *(r.name for r in renewables(spec, lambda _p: b"", True))])
            raise UsageError(f"unknown certificate {name!r}", hint=f"use one of {known}")
    ctx = RunContext(spec, target)
    results = []
    lines = []
    for item in items:
        status = item.renew(ctx, kubeconfig_dir)
        results.append({"name": item.name, "status": status})
        if status == "missing":
            lines.append(f"MISSING! {item.long_name}")
        elif status == "external":
            ca = "ca" if item.name.endswith(".conf") else (catalog.get(item.name).ca or "ca")
            lines.append(f"Detected external {ca}, {item.long_name} can't be renewed")
        else:
            lines.append(f"{item.long_name} renewed")
    renewed = any(r["status"] == "renewed" for r in results)
    if renewed:
        lines += ["", RESTART_REMINDER]
    emit(output, {"renewed": renewed, "certificates": results, "changes": [
        {"item": c.item, "status": c.status.value} for c in ctx.phase.changes]}, "\n".join(lines))


@certs.command("certificate-key", help="Generate certificate keys")
def certificate_key() -> None:
    click.echo(new_certificate_key())


def new_certificate_key() -> str:
    """32 random bytes, hex (kubeadm copycerts.CreateCertificateKey)."""
    return secrets.token_hex(32)
