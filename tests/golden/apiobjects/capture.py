"""Capture kubeadm's own API objects as golden fixtures (run by hand; the unit tests only read files).

    python3 tests/golden/apiobjects/capture.py --lab apio [--machine cp1] [--version v1.37.2 ...]

Needs a running lab (`python3 -m bootstrap.cli lab up --name apio --control-planes 1 --workers 0`)
and the kubeadm binaries built from the pinned sources (~/.cache/kbootstrap/components/VERSION/bin).
kubeadm runs inside the lab machine, never on this host: the binary, configs/*.yaml (with
@KUBERNETES_VERSION@ filled in) and capture.sh are copied into the machine's root, capture.sh runs
over `lab ssh`, and what it leaves is written to VERSION/CASE/NAME.txt with a provenance header.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
COMPONENTS = Path.home() / ".cache" / "kbootstrap" / "components"
IN_MACHINE = "/opt/kbootstrap-capture"
CASES = ("basic", "custom")

# Fixture name -> the kubeadm command that printed it (for the header).
COMMANDS = {
    "upload-config": "kubeadm init phase upload-config all --dry-run --config {cfg}",
    "upload-certs": "kubeadm init phase upload-certs --upload-certs --dry-run --config {cfg}",
    "mark-control-plane": "kubeadm init phase mark-control-plane --dry-run --config {cfg}",
    "bootstrap-token": "kubeadm init phase bootstrap-token --dry-run --config {cfg}",
    "addon-coredns": "kubeadm init phase addon coredns --dry-run --config {cfg}",
    "addon-kube-proxy": "kubeadm init phase addon kube-proxy --dry-run --config {cfg}",
    "print-coredns": "kubeadm init phase addon coredns --print-manifest --config {cfg}",
    "print-kube-proxy": "kubeadm init phase addon kube-proxy --print-manifest --config {cfg}",
    "show-join-command": "kubeadm init --dry-run --upload-certs --ignore-preflight-errors=all --config {cfg}"
    " (only the closing text, from 'Your Kubernetes control-plane has initialized successfully!')",
}


def machine_root(lab: str, machine: str) -> Path:
    sys.path.insert(0, str(REPO))
    from bootstrap.lab import state

    lab_state = state.require(lab)
    return lab_state.machine(machine).dir(lab) / "merged"


def capture(lab: str, machine: str, version: str, out_root: Path = HERE) -> None:
    """kubeadm VERSION's objects for every case, as fixtures under out_root/VERSION/CASE/."""
    kubeadm = COMPONENTS / version / "bin" / "kubeadm"
    if not kubeadm.exists():
        raise SystemExit(f"{kubeadm} is missing: build the components first (make components)")
    root = machine_root(lab, machine)
    dest = root / IN_MACHINE.lstrip("/")
    (dest / version).mkdir(parents=True, exist_ok=True)
    (dest / "configs").mkdir(parents=True, exist_ok=True)
    shutil.copy2(kubeadm, dest / version / "kubeadm")
    for case in CASES:
        text = (HERE / "configs" / f"{case}.yaml").read_text().replace("@KUBERNETES_VERSION@", version)
        (dest / "configs" / f"{case}-{version}.yaml").write_text(text)
    with (HERE / "capture.sh").open("rb") as script:
        subprocess.run(
            [sys.executable, "-m", "bootstrap.cli", "lab", "ssh", lab, machine, "bash", "-s", IN_MACHINE, version],
            stdin=script, cwd=REPO, check=True,
        )
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for case in CASES:
        src = dest / "out" / version / case
        out = out_root / version / case
        out.mkdir(parents=True, exist_ok=True)
        for name, command in COMMANDS.items():
            header = (
                f"# kubeadm {version} (built from k8s.io/kubernetes@{version}), inside a lab machine, {today}:\n"
                f"# {command.format(cfg=f'configs/{case}.yaml')}\n"
                "# (KUBEADM_INIT_DRYRUN_DIR=/tmp/kubeadm-dryrun, after the certs and kubeconfig phases; capture.sh)\n"
            )
            (out / f"{name}.txt").write_text(header + (src / f"{name}.txt").read_text())
        for ca in ("ca.crt", "show-join-command.ca.crt"):
            shutil.copy2(src / ca, out / ca)
        print(f"wrote {out}")
    header = f"# kubeadm {version} (built from k8s.io/kubernetes@{version}), inside a lab machine, {today}:\n# kubeadm init --help\n"
    (out_root / version / "init-help.txt").write_text(header + (dest / "out" / version / "init-help.txt").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--machine", default="cp1")
    parser.add_argument("--version", action="append", dest="versions")
    parser.add_argument("--out", type=Path, default=HERE, help="where the fixtures go [default: beside this file]")
    args = parser.parse_args()
    for version in args.versions or ["v1.37.2", "v1.36.3"]:
        capture(args.lab, args.machine, version, args.out)


if __name__ == "__main__":
    main()
