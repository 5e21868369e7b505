"""`kbootstrap kubeconfig user`: kubeadm's `kubeconfig user` - a kubeconfig for one person or robot.

The client certificate is signed by the cluster CA, found like every other command finds it
(--cert-dir, --rootfs, --config). The server is --control-plane-endpoint or the config's
controlPlaneEndpoint (the VIP or load balancer in an HA cluster). The kubeconfig goes to stdout.

Groups (--org) become the certificate's O= entries, which Kubernetes reads as the user's groups.
system:masters is refused unless --allow-system-masters is given: membership in it bypasses RBAC
entirely and cannot be revoked short of replacing the CA. Bind a group to a role instead
(`kbootstrap rbac`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bootstrap.commands.common import err, rootfs_option
from bootstrap.errors import PKIError, UsageError
from bootstrap.pki import catalog
from bootstrap.pki.store import load_ca, target_reader
from bootstrap.render.kubeconfig import user_kubeconfig
from bootstrap.spec.load import build_spec, parse_duration
from bootstrap.spec.model import DEFAULT_CERT_DIR
from bootstrap.transport.local import LocalTarget

MASTERS_WARNING = (
    "WARNING: this kubeconfig is in system:masters: it bypasses RBAC and every authorization webhook, "
    "and cannot be revoked without replacing the cluster CA. Keep it offline; prefer a group bound to cluster-admin."
)


@click.group("kubeconfig", help="Kubeconfig file utilities")
def kubeconfig() -> None:
    pass


@kubeconfig.command("user", help="Output a kubeconfig file for an additional user, signed by the cluster CA")
@click.option("--client-name", required=True, help="The name of the user (the certificate's CN).")
@click.option("--org", "orgs", multiple=True, help="A group of the user (the certificate's O); repeat for more.")
@click.option("--validity", "--validity-period", "validity", default=None,
              help="How long the client certificate is valid (Go duration: 24h, 720h) [default: the "
                   "cluster's certificate validity, 8760h].")
@click.option("--token", default=None, help="Put this token in the kubeconfig instead of a client certificate.")
@click.option("--control-plane-endpoint", default=None,
              help="The API endpoint (HOST:PORT) the kubeconfig points at "
                   "[default: the config's controlPlaneEndpoint].")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Path to a kubeadm configuration file.")
@click.option("--cert-dir", default=None, help=f"Where the CA is [default: {DEFAULT_CERT_DIR}].")
@click.option("--allow-system-masters", is_flag=True,
              help="Allow --org system:masters (unrestricted, unrevocable admin). Don't.")
@rootfs_option
def user(client_name: str, orgs: tuple[str, ...], validity: str | None, token: str | None,
         control_plane_endpoint: str | None, config: str | None, cert_dir: str | None,
         allow_system_masters: bool, rootfs: str | None) -> None:
    if not client_name.strip():
        raise UsageError("--client-name must not be empty")
    if catalog.SYSTEM_MASTERS in orgs and not allow_system_masters:
        raise UsageError(
            "--org system:masters gives a certificate that bypasses RBAC and cannot be revoked",
            hint="bind a group to a ClusterRole with `kbootstrap rbac` instead, or pass --allow-system-masters",
        )
    flags = {"control_plane_endpoint": control_plane_endpoint} if control_plane_endpoint else {}
    defaults = {"advertise_address": ("127.0.0.1", "default"), "node.name": ("localhost", "default")}
    spec = build_spec(flags, config, defaults=defaults)
    if cert_dir:
        spec = spec.model_copy(update={"cert_dir": cert_dir})
    if not spec.control_plane_endpoint:
        raise UsageError("no API server address for the kubeconfig",
                         hint="pass --control-plane-endpoint HOST:PORT, or a --config with controlPlaneEndpoint")
    period = parse_duration(validity, "--validity") if validity is not None else None
    if period is not None and period.total_seconds() <= 0:
        raise UsageError(f"--validity {validity} must be positive")
    target = LocalTarget(rootfs or "/")
    ca = load_ca(target_reader(target), catalog.CA, spec.cert_dir)
    if ca is None:
        where = catalog.CA.cert_path(spec.cert_dir)
        if rootfs:
            where = rootfs.rstrip("/") + where
        raise PKIError(f"couldn't load the cluster CA from {where}",
                       hint="point --cert-dir, --rootfs or --config at it")
    if ca.external and token is None:
        raise PKIError("the cluster CA's key is not here (external CA): the client certificate cannot be signed",
                       hint="run this where ca.key is, or use --token")
    now = datetime.now(UTC)
    if period is not None and now + period > ca.cert.not_valid_after_utc:
        raise UsageError(f"--validity {validity} outlives the cluster CA "
                         f"(expires {ca.cert.not_valid_after_utc:%Y-%m-%d})", hint="ask for less")
    data = user_kubeconfig(spec, ca, now, client_name, orgs, token=token, validity=period)
    if catalog.SYSTEM_MASTERS in orgs:
        err(MASTERS_WARNING)
    click.echo(data.decode(), nl=False)
