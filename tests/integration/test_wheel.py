"""The built wheel carries its templates and works outside the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_and_renders_outside_the_repo(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True)
    wheel = next((tmp_path / "dist").glob("kbootstrap-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "bootstrap/_templates/kubelet/kubelet.service" in names
    assert "bootstrap/_templates/containerd/config-v2.toml.j2" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [str(venv / "bin/kbootstrap"), "init", "--rootfs", "out", "--apiserver-advertise-address", "192.0.2.1",
         "--node-name", "cp1", "-o", "json"],
        cwd=elsewhere, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "out/usr/lib/systemd/system/kubelet.service").is_file()
    # It ran the installed copy, not this checkout.
    where = subprocess.run([str(venv / "bin/python"), "-c", "import bootstrap; print(bootstrap.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True, check=True).stdout
    assert str(venv) in where
