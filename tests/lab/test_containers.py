"""Containers and a kubelet inside a lab machine, with the components built for this project
(containerd 2, runc, crictl, kubelet), pulling through the lab registry's mirror.

Skips (saying what is missing) when the components are not built; fails instead with
KBOOTSTRAP_STRICT=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bootstrap.lab import registry
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh
from bootstrap.render import containerd_registry

pytestmark = [pytest.mark.lab, pytest.mark.slow]
LabFactory = Callable[..., LabState]

BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl", "kubelet")
KUBELET_UNIT = """[Unit]
Description=kubelet (standalone: static pods only)
After=containerd.service
Requires=containerd.service

[Service]
ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml
Restart=always
RestartSec=2
"""


def built_binaries() -> dict[str, Path]:
    """Each binary from a components release's manifest."""
    found: dict[str, Path] = {}
    root = registry.components_dir()
    for release in sorted(root.glob("*"), reverse=True) if root.is_dir() else []:
        try:
            arts = json.loads((release / "manifest.json").read_text())["artifacts"]
        except (OSError, ValueError, KeyError):
            continue
        for a in arts:
            p = release / str(a.get("path", ""))
            if a.get("kind") == "binary" and a.get("name") in BINARIES and p.is_file():
                found.setdefault(a["name"], p)
    return found


def need_components() -> dict[str, Path]:
    found = built_binaries()
    missing = [b for b in BINARIES if b not in found]
    if missing:
        why = f"components not built: {', '.join(missing)} (make components; looked in {registry.components_dir()})"
        if os.environ.get("KBOOTSTRAP_STRICT") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


def ok(lab: LabState, m: str, cmd: str, timeout: float = 120) -> str:
    code, out, err = sh(lab, m, cmd, timeout=timeout)
    assert code == 0, f"{m}: {cmd!r} -> {code}: {err or out}"
    return out


def put(lab: LabState, m: str, path: str, data: bytes, mode: int = 0o644) -> None:
    code, _, err = sh(lab, m, f"mkdir -p $(dirname {path}) && cat > {path}.tmp && chmod {mode:o} {path}.tmp "
                               f"&& mv {path}.tmp {path}", data.decode("latin-1"), timeout=300)
    assert code == 0, err


def kbootstrap(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bootstrap.cli", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"kbootstrap {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def node(module_lab_factory: LabFactory, bundle: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[LabState, str, dict[str, object]]:
    """A lab machine prepared by the product's own phases from the lab inventory and the bundle of
    the component build: kernel, container runtime (containerd 2 + runc, config.toml with the
    registry mirrors of the inventory as hosts.toml), and the kubelet binary."""
    need_components()
    lab = module_lab_factory(1, 0)
    m = lab.machines[0].name
    inventory = str(Path(lab.inventory_dir) / "hosts.yaml")
    pki = str(tmp_path_factory.mktemp("pki"))
    for phase in (["kernel"], ["container-runtime"], ["binaries", "kubelet"]):
        kbootstrap("init", "phase", *phase, "-i", inventory, "--pki-dir", pki)
    gv = yaml.safe_load((Path(lab.inventory_dir) / "group_vars/all/lab.yml").read_text())
    return lab, m, gv


def test_containerd_pulls_through_the_mirror_and_runs_a_container(node: tuple[LabState, str, dict[str, object]]) -> None:
    lab, m, _ = node
    image = registry.test_image_reference(lab.registry_images)
    assert image, lab.registry_images
    ok(lab, m, f"ctr images pull --hosts-dir {containerd_registry.CONFIG_PATH} {image}", timeout=300)
    assert ok(lab, m, f"ctr run --rm {image} kbt-echo echo ok").strip() == "ok"
    # The kubelet's way to pull: the CRI, which reads the mirrors from config_path (hosts.toml).
    ok(lab, m, f"crictl pull {image}", timeout=300)
    assert image.split("/", 1)[-1].split(":")[0] in ok(lab, m, "crictl images")
    # The kubelet's way: runc under a systemd-managed cgroup (SystemdCgroup=true).
    assert ok(lab, m, f"ctr run --rm --runc-systemd-cgroup --cgroup system.slice:kbt:echo {image} kbt-echo2 "
                      "echo ok").strip() == "ok"
    assert "Server:\n  Version:  v2." in ok(lab, m, "ctr version")


def test_standalone_kubelet_runs_a_static_pod(node: tuple[LabState, str, dict[str, object]]) -> None:
    lab, m, gv = node
    image = registry.test_image_reference(lab.registry_images)
    assert gv["kubelet_fail_cgroup_v1"] is False
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        # This host's cgroups are v1: kubelet >= 1.35 refuses them unless told (KEP-5573).
        "failCgroupV1": gv["kubelet_fail_cgroup_v1"],
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "staticPodPath": "/etc/kubernetes/manifests",
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "failSwapOn": False,
    }
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kbt-static", "namespace": "default"},
        "spec": {"hostNetwork": True, "containers": [
            {"name": "main", "image": image, "command": ["/bin/sh", "-c", "echo static-ok; exec sleep 3600"]},
        ]},
    }
    put(lab, m, "/var/lib/kubelet/config.yaml", yaml.safe_dump(config).encode())
    put(lab, m, "/etc/kubernetes/manifests/.keep", b"")
    put(lab, m, "/etc/kubernetes/manifests/kbt-static.yaml", yaml.safe_dump(pod).encode())
    put(lab, m, "/etc/systemd/system/kubelet.service", KUBELET_UNIT.encode())
    ok(lab, m, "systemctl daemon-reload && systemctl start kubelet")
    deadline = time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        code, out, _ = sh(lab, m, "crictl ps --name main -o json")
        containers = json.loads(out).get("containers", []) if code == 0 and out.strip() else []
        state = containers[0]["state"] if containers else ""
        if state == "CONTAINER_RUNNING":
            break
        time.sleep(2)
    else:
        _, log, _ = sh(lab, m, "journalctl -u kubelet --no-pager | grep -E ' E[0-9]{4} ' | tail -5")
        pytest.fail(f"static pod container state {state!r} after 120 s; kubelet errors:\n{log}")
    assert "Running" in ok(lab, m, "crictl ps --name main")
    assert "static-ok" in ok(lab, m, "crictl logs $(crictl ps -q --name main)")
    # Its cgroups are under the kubelet's kubepods.slice, inside the machine's own subtree.
    cg = ok(lab, m, "cat /proc/$(pgrep -f 'sleep 3600' | head -1)/cgroup")
    assert ":memory:/kubepods.slice/" in cg or "::/kubepods.slice/" in cg, cg
