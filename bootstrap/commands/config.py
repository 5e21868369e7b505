"""`kbootstrap config`: kubeadm's `config images list`, `config print`, `config validate` and
`config migrate`, offline."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import click

from bootstrap.commands.common import err
from bootstrap.errors import ConfigError, UsageError
from bootstrap.join.tokens import generate_token
from bootstrap.lab.state import write_atomic
from bootstrap.render.apiobjects.common import go_yaml
from bootstrap.render.kubeadm_defaults import (
    PLACEHOLDER_ADDRESS,
    PRINT_MIN_MINOR,
    control_plane_images,
    images_object,
    init_defaults,
    join_defaults,
)
from bootstrap.render.kubeadm_migrate import (
    COMPONENT_CONFIG_GVKS,
    KNOWN_CRI_SOCKETS,
    MIGRATE_MIN_MINOR,
    Host,
    file_kubernetes_version,
    migrate,
    parse_documents,
    reader_view,
)
from bootstrap.spec.kubeadm_config import check_api_versions
from bootstrap.spec.load import build_spec, default_advertise_address, validity_warnings
from bootstrap.spec.model import ClusterSpec
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION, KubeVersion, resolve_version

# What only selects images: the node's own address does not matter, and none is looked up.
_NO_NODE = {"advertise_address": (PLACEHOLDER_ADDRESS, "config"), "node.name": ("node", "config")}
COMPONENT_CONFIGS = ("KubeProxyConfiguration", "KubeletConfiguration")


@click.group("config")
def config() -> None:
    """kubeadm's configuration commands: the images a release uses, its defaults, a file checked or migrated.

    Offline: version labels (stable, stable-1.37) resolve from kbootstrap's release table, never
    from dl.k8s.io.
    """


@config.group("images")
def images() -> None:
    """Interact with container images used by kubeadm."""


@images.command("list")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Path to a kubeadm configuration file.")
@click.option("--kubernetes-version", help="A version or label (stable-1, stable-1.36); default: our newest release.")
@click.option("--image-repository", help="Container registry to take the control plane images from.")
@click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True)
def images_list(config_path: str | None, kubernetes_version: str | None, image_repository: str | None,
                output: str) -> None:
    """Print the images kubeadm (and kbootstrap) use for the release, as kubeadm lists them."""
    if config_path and (kubernetes_version or image_repository):
        pairs = (("kubernetes-version", kubernetes_version), ("image-repository", image_repository))
        given = [flag for flag, value in pairs if value]
        raise UsageError(f"can not mix '--config' with arguments {given}", hint="set them in the file instead")
    flags = {"kubernetes_version": kubernetes_version, "image_repository": image_repository}
    spec = build_spec(flags, config_path, defaults=dict(_NO_NODE))
    listed = control_plane_images(spec)
    if output == "json":
        click.echo(json.dumps(images_object(listed), indent=4))
    elif output == "yaml":
        click.echo(go_yaml(images_object(listed)), nl=False)
    else:
        click.echo("\n".join(listed))


@config.group("print")
def print_group() -> None:
    """Print configuration: kubeadm's defaults for init and join."""


def _components_option(fn: Any) -> Any:
    return click.option(
        "--component-configs", default="",
        help=f"Comma-separated component configs to print the defaults of: {', '.join(COMPONENT_CONFIGS)}.",
    )(fn)


def _version_option(fn: Any) -> Any:
    return click.option("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION, show_default=True,
                        help="The release whose kubeadm's defaults to print (a version or a label).")(fn)


def _release(text: str) -> KubeVersion:
    version = KubeVersion.parse(resolve_version(text, "--kubernetes-version"), "--kubernetes-version")
    if version.minor < PRINT_MIN_MINOR:
        raise UsageError(f"--kubernetes-version {text}: kubeadm before v1.{PRINT_MIN_MINOR} prints v1beta3 defaults, "
                         "which kbootstrap does not print", hint=f"use v1.{PRINT_MIN_MINOR} or newer")
    return version


def _component_docs(names: str, version: KubeVersion) -> list[dict[str, Any]]:
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in COMPONENT_CONFIGS]
    if unknown:
        raise UsageError(f"unknown component config(s) {', '.join(unknown)}",
                         hint=f"available: {', '.join(COMPONENT_CONFIGS)}")
    if not wanted:
        return []
    from bootstrap.render.apiobjects.kubeproxy import kube_proxy_configuration
    from bootstrap.render.apiobjects.uploadconfig import cluster_kubelet_configuration
    from bootstrap.render.kubelet import kubelet_config

    spec = ClusterSpec.model_validate({"kubernetes_version": str(version), "advertise_address": PLACEHOLDER_ADDRESS,
                                       "node": {"name": "node"}})
    docs = []
    for name in wanted:  # in the flag's order, repeats too, as kubeadm prints them
        if name == "KubeletConfiguration":
            docs.append(cluster_kubelet_configuration(spec, kubelet_config(spec)[0]))
        else:
            docs.append(kube_proxy_configuration(spec)[0])
    return docs


def _print_docs(docs: list[dict[str, Any]]) -> None:
    click.echo("---\n".join(go_yaml(d) for d in docs), nl=False)


@print_group.command("init-defaults")
@_components_option
@_version_option
def print_init_defaults(component_configs: str, kubernetes_version: str) -> None:
    """Print the default InitConfiguration and ClusterConfiguration (placeholders for secrets)."""
    version = _release(kubernetes_version)
    _print_docs(init_defaults(version) + _component_docs(component_configs, version))


@print_group.command("join-defaults")
@_version_option
def print_join_defaults(kubernetes_version: str) -> None:
    """Print the default JoinConfiguration (placeholders for secrets; this host's name)."""
    _release(kubernetes_version)
    _print_docs(join_defaults())


@config.command("validate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="Path to a kubeadm configuration file.")
@click.option("--kubernetes-version", help="The release whose kubeadm's rules apply when the file names none "
              "(a Join-, Reset- or UpgradeConfiguration alone). [default: our newest release]")
def validate_config(config_path: str, kubernetes_version: str | None) -> None:
    """Read a kubeadm configuration file and report any problem (exit 2 on one); `ok` when valid."""
    defaults = dict(_NO_NODE)
    if kubernetes_version:
        defaults["kubernetes_version"] = (kubernetes_version, "--kubernetes-version")
    spec = build_spec({}, config_path, defaults=defaults, purpose="validate")
    for line in validity_warnings(spec):
        click.echo(f"warning: {line}", err=True)
    click.echo("ok")


@config.command("migrate")
@click.option("--old-config", "old_config", type=click.Path(dir_okay=False), required=True,
              help="Path to the kubeadm config file that uses an old API version (or an old version's defaults).")
@click.option("--new-config", "new_config", type=click.Path(dir_okay=False),
              help="Write the result to this file (atomically) instead of stdout.")
@click.option("--allow-experimental-api", is_flag=True, help="Read kubeadm.k8s.io/v1 (kubeadm v1.37 and newer).")
@click.option("--kubernetes-version", default=None,
              help="The release whose kubeadm to follow; default: the file's kubernetesVersion, else "
                   f"{DEFAULT_KUBERNETES_VERSION}.")
def migrate_config(old_config: str, new_config: str | None, allow_experimental_api: bool,
                   kubernetes_version: str | None) -> None:
    """What `kubeadm config migrate` of the release prints: the file's kubeadm documents re-defaulted,
    converted and validated, as full kubeadm.k8s.io/v1beta4 documents.

    As kubeadm, values the file leaves out come from this machine: the node name (hostname), the
    advertise address (default route), the CRI socket (detected), a new bootstrap token.
    KubeletConfiguration and KubeProxyConfiguration are checked, not carried over.
    """
    try:
        text = Path(old_config).read_text()
    except OSError as exc:
        raise ConfigError("--old-config", f"cannot read {old_config}: {exc.strerror}") from None
    docs = parse_documents(text, old_config)
    release = _migrate_release(kubernetes_version, file_kubernetes_version(docs))
    if release.minor < MIGRATE_MIN_MINOR:
        raise UsageError(f"kbootstrap follows kubeadm v1.{MIGRATE_MIN_MINOR} and newer's config migrate; {release} "
                         f"is older", hint=f"pass --kubernetes-version v1.{MIGRATE_MIN_MINOR}.x (its kubeadm "
                         f"migrates clusters of v1.{MIGRATE_MIN_MINOR - 1} too)")
    check_api_versions(old_config, release.minor)
    result = migrate(docs, release, _this_host(), allow_experimental=allow_experimental_api)
    warnings = _check_with_our_reader(result.documents, docs) + result.warnings
    out = "---\n".join(go_yaml(d) for d in result.documents)
    if new_config:
        _write_new_config(Path(new_config), out)
    else:
        click.echo(out, nl=False)
    for line in warnings:
        err(f"warning: {line}")


def _migrate_release(flag: str | None, in_file: str | None) -> KubeVersion:
    """The kubeadm release to follow: the flag's, else the cluster's version, else our newest."""
    if flag:
        return KubeVersion.parse(resolve_version(flag, "--kubernetes-version"), "--kubernetes-version")
    if in_file:
        where = "ClusterConfiguration.kubernetesVersion"
        return KubeVersion.parse(resolve_version(in_file, where), where)
    return KubeVersion.parse(DEFAULT_KUBERNETES_VERSION)


def _this_host() -> Host:
    """The machine facts kubeadm's dynamic defaults read, looked up only when a value is missing."""

    def address() -> str | None:
        try:
            return default_advertise_address()
        except ConfigError:
            return None

    def answers(endpoint: str) -> bool:  # kubeadm's isExistingSocket: a socket that accepts a connection
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(endpoint.removeprefix("unix://"))
            except OSError:
                return False
        return True

    return Host(hostname=socket.gethostname, default_address=address,
                cri_sockets=lambda: [e for e in KNOWN_CRI_SOCKETS if answers(e)],
                new_token=lambda: str(generate_token()), file_exists=os.path.exists)


def _check_with_our_reader(migrated: list[dict[str, Any]], old: list[Any]) -> list[str]:
    """The migrated Init/Cluster documents (and the file's component configs) must pass kbootstrap's
    own reader, the rules `config validate` applies; its certificate validity warnings are kubeadm's."""
    docs = [reader_view(d) for d in migrated if d["kind"] in ("InitConfiguration", "ClusterConfiguration")]
    if not docs:
        return []
    docs += [d for d in old if isinstance(d, dict) and (d.get("apiVersion"), d.get("kind")) in COMPONENT_CONFIG_GVKS]
    with tempfile.TemporaryDirectory(prefix="kbootstrap-migrate-") as tmp:
        path = Path(tmp) / "migrated.yaml"
        path.write_text("---\n".join(go_yaml(d) for d in docs))
        spec = build_spec({}, str(path), defaults=dict(_NO_NODE))
    return validity_warnings(spec)


def _write_new_config(path: Path, text: str) -> None:
    if path.is_dir():
        raise UsageError(f"--new-config {path}: is a directory", hint="name a file")
    if not path.parent.is_dir():
        raise UsageError(f"--new-config {path}: directory {path.parent} does not exist", hint="create it first")
    write_atomic(path, text, 0o644)  # kubeadm writes 0644; readers never see half a file
