"""Read kubeadm's patches directory (InitConfiguration/JoinConfiguration `patches.directory`, `--patches`).

kubeadm's rules (cmd/kubeadm/app/util/patches): every file under the directory, subdirectories
included, in lexical walk order, named `target[suffix][+patchtype].{json,yaml}`; target one of the
known targets, patchtype strategic (the default), merge or json. A file with another extension or
target is ignored, an empty file too; `+` without a known type is an error. A file holds one patch
per YAML document. The directory is read on the control machine, where the config file is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from bootstrap.errors import ConfigError
from bootstrap.spec.model import PatchSet

KUBELET_CONFIGURATION = "kubeletconfiguration"
COREDNS_DEPLOYMENT = "corednsdeployment"
KUBE_PROXY_DAEMONSET = "kubeproxydaemonset"
KNOWN_TARGETS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", KUBELET_CONFIGURATION,
                 COREDNS_DEPLOYMENT, KUBE_PROXY_DAEMONSET)
# The release that made each addon a target: before it, kubeadm ignores such a file (unknown target).
TARGET_SINCE = {COREDNS_DEPLOYMENT: 31, KUBE_PROXY_DAEMONSET: 37}
PATCH_TYPES = ("json", "merge", "strategic")
_EXTENSION = re.compile(r".+\.(json|yaml)$")


def known_targets(minor: int) -> tuple[str, ...]:
    return tuple(t for t in KNOWN_TARGETS if minor >= TARGET_SINCE.get(t, 0))


def read_patches_dir(path: str, where: str, minor: int) -> tuple[tuple[PatchSet, ...], tuple[str, ...]]:
    """(the patch sets in kubeadm's order, the names of the files ignored) for release v1.<minor>.
    Raises ConfigError."""
    root = Path(path)
    if not root.is_dir() or root.is_symlink():  # kubeadm Lstat()s the path: a symlink is "not a directory"
        why = "not a directory" if root.exists() else "no such file or directory"
        raise ConfigError(where, f"could not list patch files for path {path!r}: {why}")
    sets: list[PatchSet] = []
    ignored: list[str] = []
    for file in _walk(root):
        name = file.name
        parsed = parse_file_name(name, where, known_targets(minor))
        if parsed is None:
            ignored.append(name)
            continue
        try:
            data = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(where, f"could not read the file {str(file)!r}: {exc}") from None
        if not data:
            ignored.append(name)
            continue
        target, patch_type = parsed
        sets.append(PatchSet(file=name, target=target, patch_type=patch_type, patches=_documents(data, name, where)))
    return tuple(sets), tuple(ignored)


def parse_file_name(name: str, where: str, targets: tuple[str, ...] = KNOWN_TARGETS) -> tuple[str, str] | None:
    """(target, patch type), or None for a file kubeadm ignores."""
    if not _EXTENSION.match(name):
        return None
    pattern = rf"^({'|'.join(map(re.escape, targets))})([^.+\n]*)?(\+)?({'|'.join(PATCH_TYPES)})?"
    match = re.match(pattern, name)
    if match is None:
        return None
    if match.group(3) and not match.group(4):
        raise ConfigError(where, f"{name}: unknown or missing patch type after '+', must be one of "
                          f"[{' '.join(PATCH_TYPES)}]")
    return match.group(1), match.group(4) or "strategic"


def _walk(root: Path) -> list[Path]:
    """Go's filepath.Walk order: each directory's entries sorted by name, depth first."""
    out: list[Path] = []
    for entry in sorted(os.listdir(root)):
        child = root / entry
        if child.is_dir() and not child.is_symlink():
            out.extend(_walk(child))
        else:
            out.append(child)
    return out


def _documents(data: str, name: str, where: str) -> tuple[Any, ...]:
    """One patch per document: split at `---` lines as apimachinery's YAML reader does."""
    chunks: list[list[str]] = [[]]
    for line in data.splitlines():
        if line.startswith("---") and (not line[3:].strip() or line[3:].strip().startswith("#")):
            chunks.append([])
        else:
            chunks[-1].append(line)
    out = []
    for chunk in chunks:
        text = "\n".join(chunk).strip()
        if not text:
            continue
        try:
            out.append(yaml.safe_load(text))
        except yaml.YAMLError:
            raise ConfigError(where, f"{name}: could not convert patch to JSON (not valid YAML)") from None
    return tuple(out)
