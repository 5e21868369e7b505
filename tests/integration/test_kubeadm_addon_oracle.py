"""The real kubeadm judges the addon objects kbootstrap creates: CoreDNS and kube-proxy.

`kubeadm init phase addon coredns|kube-proxy --print-manifest --config F` prints, without a
cluster, every object the phase would create (kubeadm's patches directory applied). For every
release we build and each config below, those objects and kbootstrap's (`coredns_objects`,
`kube_proxy_objects`: what the addon phases send) must be equal as objects. Two things are
normalized, both because kubeadm prints its template before it decodes and sends it:
`readOnly: false` (the typed object drops it, omitempty) and the kube-proxy ConfigMap's
component-config hash annotation (kubeadm signs the ConfigMap after printing it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.render.apiobjects.coredns import coredns_objects
from bootstrap.render.apiobjects.kubeproxy import kube_proxy_objects
from bootstrap.spec.load import build_spec
from tests.kbtest import RELEASE_NAMES, kubeadm_offline, real_kubeadm

pytestmark = pytest.mark.slow
HASH_ANNOTATION = "kubeadm.kubernetes.io/component-config.hash"

INIT = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: "{address}"
nodeRegistration:
  name: oracle-node
{patches}---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
"""
CASES: dict[str, tuple[str, str]] = {  # name -> (advertise address, the ClusterConfiguration's body and more)
    "defaults": ("10.0.0.10", ""),
    "custom-network-and-images": ("10.0.0.10", """\
controlPlaneEndpoint: "lb.oracle.test:8443"
imageRepository: mirror.oracle.test/k8s
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.112.0.0/12
  dnsDomain: oracle.local
dns:
  imageRepository: mirror.oracle.test/dns
  imageTag: v1.12.9
"""),
    "dual-stack": ("10.0.0.10", """\
networking:
  podSubnet: 10.244.0.0/16,fd00:244::/56
  serviceSubnet: 10.96.0.0/12,fd00:96::/108
"""),
    "ipv6": ("fd00:10::10", """\
networking:
  podSubnet: fd00:244::/56
  serviceSubnet: fd00:96::/108
"""),
    "kube-proxy-configuration": ("10.0.0.10", """\
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
conntrack:
  maxPerCore: 0
metricsBindAddress: 0.0.0.0:10249
"""),
    "patches": ("10.0.0.10", ""),
}
PATCHES = {
    "corednsdeployment+json.yaml": "- op: replace\n  path: /spec/replicas\n  value: 3\n",
    "corednsdeployment0.yaml": """\
spec:
  template:
    spec:
      containers:
      - name: coredns
        resources:
          limits:
            memory: 256Mi
      tolerations:
      - key: example.com/dedicated
        operator: Exists
""",
    "kubeproxydaemonset.yaml": """\
spec:
  template:
    spec:
      containers:
      - name: kube-proxy
        env:
        - name: EXTRA
          value: "1"
""",
    "kubeproxydaemonset+merge.json": '{"metadata": {"annotations": {"example.com/patched": "yes"}}}\n',
}


def config_file(tmp_path: Path, case: str, release: str) -> str:
    address, body = CASES[case]
    patches = ""
    if case == "patches":
        for name, text in PATCHES.items():
            (tmp_path / "patches").mkdir(exist_ok=True)
            (tmp_path / "patches" / name).write_text(text)
        patches = f"patches:\n  directory: {tmp_path / 'patches'}\n"
    path = tmp_path / f"{case}.yaml"
    path.write_text(INIT.format(address=address, patches=patches, version=release) + body)
    return str(path)


def without_false_read_only(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: without_false_read_only(v) for k, v in obj.items() if not (k == "readOnly" and v is False)}
    if isinstance(obj, list):
        return [without_false_read_only(v) for v in obj]
    return obj


def by_kind_and_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    out = {}
    for doc in docs:
        doc = without_false_read_only(doc)
        (doc["metadata"].get("annotations") or {}).pop(HASH_ANNOTATION, None)
        if doc["metadata"].get("annotations") == {}:
            del doc["metadata"]["annotations"]
        out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def printed_by_kubeadm(release: str, addon: str, config: str) -> dict[tuple[str, str], Any]:
    proc = kubeadm_offline(real_kubeadm(release), "init", "phase", "addon", addon, "--print-manifest",
                           "--config", config)
    assert proc.returncode == 0, proc.stderr
    # Its own progress lines ([patches] ...) share stdout, and a document may follow `---` directly.
    text = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("[patches]"))
    return by_kind_and_name([d for d in yaml.safe_load_all(text.replace("---apiVersion", "---\napiVersion")) if d])


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_addon_objects_match_the_real_kubeadm(release: str, case: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, case, release)
    spec = build_spec({}, config)
    ours = {"coredns": coredns_objects(spec),
            "kube-proxy": kube_proxy_objects(spec, spec.kube_proxy_configuration or None)}
    printed: dict[tuple[str, str], Any] = {}
    for addon, objects in ours.items():
        theirs, mine = printed_by_kubeadm(release, addon, config), by_kind_and_name(objects)
        printed |= theirs
        assert sorted(mine) == sorted(theirs), addon
        different = [key for key in theirs if mine[key] != theirs[key]]
        assert not different, "\n".join(f"{key}:\n  kubeadm:    {theirs[key]}\n  kbootstrap: {mine[key]}"
                                        for key in different)
    if case == "patches":  # the case cannot pass by both sides ignoring the directory
        assert printed[("Deployment", "coredns")]["spec"]["replicas"] == 3
        # kubeproxydaemonset is a target from v1.37 on; before, kubeadm ignores the file (unknown target).
        annotations = printed[("DaemonSet", "kube-proxy")]["metadata"].get("annotations")
        assert annotations == ({"example.com/patched": "yes"} if spec.version.at_least(37) else None)
