"""`kbootstrap config`: kubeadm's `config images list`, `config print` and `config validate`, offline."""

from __future__ import annotations

import json
from typing import Any

import click

from bootstrap.errors import UsageError
from bootstrap.render.apiobjects.common import go_yaml
from bootstrap.render.kubeadm_defaults import (
    PLACEHOLDER_ADDRESS,
    PRINT_MIN_MINOR,
    control_plane_images,
    images_object,
    init_defaults,
    join_defaults,
)
from bootstrap.spec.load import build_spec, validity_warnings
from bootstrap.spec.model import ClusterSpec
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION, KubeVersion, resolve_version

# What only selects images: the node's own address does not matter, and none is looked up.
_NO_NODE = {"advertise_address": (PLACEHOLDER_ADDRESS, "config"), "node.name": ("node", "config")}
COMPONENT_CONFIGS = ("KubeProxyConfiguration", "KubeletConfiguration")


@click.group("config")
def config() -> None:
    """kubeadm's configuration commands: the images a release uses, its defaults, a file checked.

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
def validate_config(config_path: str) -> None:
    """Read a kubeadm configuration file and report any problem (exit 2 on one); `ok` when valid."""
    spec = build_spec({}, config_path, defaults=dict(_NO_NODE))
    for line in validity_warnings(spec):
        click.echo(f"warning: {line}", err=True)
    click.echo("ok")
