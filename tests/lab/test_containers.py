"""Containers and a kubelet inside a lab machine, with the components built for this project
(containerd 2, runc, crictl, kubelet), pulling through the lab registry's mirror.

Skips (saying what is missing) when the components are not built; fails instead with
KBOOTSTRAP_STRICT=1.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bootstrap.lab import machine, registry
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh
from bootstrap.render import containerd_registry
from bootstrap.render.node import crictl_yaml
from bootstrap.render.templates import render_template

pytestmark = [pytest.mark.lab, pytest.mark.slow]
LabFactory = Callable[..., LabState]

BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl", "kubelet")
TRIAL_KUBELET = Path("/tmp/kbtrial/v1.37.2/out/kubelet")  # a trial build, until the components have one
CONTAINERD_UNIT = """[Unit]
Description=containerd container runtime
After=network.target local-fs.target

[Service]
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=2
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""
KUBELET_UNIT = """[Unit]
Description=kubelet (standalone: static pods only)
After=containerd.service
Requires=containerd.service

[Service]
ExecStart=/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml
Restart=always
RestartSec=2
"""


def built_binaries() -> dict[str, Path]:
    """Each binary from a components release's manifest (the kubelet from a trial build if need be)."""
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
    if "kubelet" not in found and TRIAL_KUBELET.is_file():
        found["kubelet"] = TRIAL_KUBELET
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


def put_binary(lab: LabState, m: str, path: str, src: Path) -> None:
    """Straight into the machine's overlay from the host: ~250 MB over SSH takes minutes, and how
    binaries reach real nodes is tested elsewhere."""
    dest = machine.paths(lab, lab.machine(m))["merged"] / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def containerd_config(sandbox: str, restrict_oom: bool) -> str:
    """The product's containerd 2 config, plus what the lead wires from the inventory: the registry
    config_path, and restrict_oom_score_adj where the lab says the host needs it."""
    base = render_template("containerd/config-v3.toml.j2", sandbox_image=sandbox)
    return base + (
        f"\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = \"{containerd_registry.CONFIG_PATH}\"\n"
        f"\n[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = {str(restrict_oom).lower()}\n"
    )


@pytest.fixture(scope="module")
def node(module_lab_factory: LabFactory) -> tuple[LabState, str, dict[str, object]]:
    """A lab machine with the built containerd, runc, crictl and kubelet, and the mirror config the
    renderer makes from the lab inventory."""
    bins = need_components()
    lab = module_lab_factory(1, 0)
    m = lab.machines[0].name
    gv = yaml.safe_load((Path(lab.inventory_dir) / "group_vars/all/lab.yml").read_text())
    for name, src in bins.items():
        put_binary(lab, m, f"/usr/local/bin/{name}", src)
    files = containerd_registry.render(gv[containerd_registry.MIRRORS_VAR],
                                       ca_pem=Path(gv[containerd_registry.CA_VAR]).read_bytes())
    for path, data in files.items():
        put(lab, m, path, data, containerd_registry.file_mode(path))
    pause = next((r for r in lab.registry_images if "/pause:" in r), None) or registry.test_image_reference(
        lab.registry_images)
    assert pause, lab.registry_images
    put(lab, m, "/etc/containerd/config.toml",
        containerd_config(pause, bool(gv["kbootstrap_containerd_restrict_oom_score_adj"])).encode())
    put(lab, m, "/etc/crictl.yaml", crictl_yaml())
    put(lab, m, "/etc/systemd/system/containerd.service", CONTAINERD_UNIT.encode())
    ok(lab, m, "systemctl daemon-reload && systemctl enable -q --now containerd && "
               "for i in $(seq 50); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1")
    return lab, m, gv


def test_containerd_pulls_through_the_mirror_and_runs_a_container(node: tuple[LabState, str, dict[str, object]]) -> None:
    lab, m, _ = node
    image = registry.test_image_reference(lab.registry_images)
    assert image, lab.registry_images
    ok(lab, m, f"ctr images pull --hosts-dir {containerd_registry.CONFIG_PATH} {image}", timeout=300)
    assert ok(lab, m, f"ctr run --rm {image} kbt-echo echo ok").strip() == "ok"
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
