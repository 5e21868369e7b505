"""The images of a release: the references kubeadm pulls, laid out the way the upstream images are.

- kube-apiserver, -controller-manager, -scheduler, -proxy (build/server-image/Dockerfile): the binary
  at /usr/local/bin/NAME and kube-log-runner as /go-runner, ENTRYPOINT ["/go-runner"]; kubeadm's
  static Pods name the command themselves. kube-apiserver carries cap_net_bind_service, as upstream
  sets with setcap.
- kube-proxy runs on distroless-iptables upstream: it execs iptables/ip6tables(-save/-restore) and,
  in nftables mode, nft; in ipvs mode ipset. Conntrack cleanup is netlink (no binary), but
  conntrack is in the upstream base and comes along. Here they are Debian's own binaries with every
  library their packages depend on (components.debian), and iptables points at the nft backend, as
  Debian's alternatives default does (upstream's iptables-wrapper auto-detection is not included).
- etcd (etcd's Dockerfile): etcd, etcdctl, etcdutl in /usr/local/bin, WORKDIR /var/lib/etcd,
  CMD ["/usr/local/bin/etcd"].
- coredns (its Dockerfile): /coredns with cap_net_bind_service, user nonroot (65532), ENTRYPOINT ["/coredns"].
- pause (build/pause/Dockerfile): FROM scratch, /pause, USER 65535:65535, ENTRYPOINT ["/pause"].
- kube-router (its Dockerfile): /usr/local/bin/kube-router and gobgp, WORKDIR /root,
  ENTRYPOINT ["/usr/local/bin/kube-router"], under the reference Kubespray deploys
  (kube_router_image_repo docker.io/cloudnativelabs/kube-router, tag vVERSION). kube-router execs
  iptables/ip6tables(-save/-restore) (go-iptables and its own restore calls), ipset, ip (routes,
  rules, tunnels), conntrack (UDP graceful termination) and modprobe (br_netfilter, fou): kube-proxy's
  netfilter layer (the same layer, stored once) plus a layer with Debian's iproute2, kmod and
  ipvsadm (upstream's image has ipvsadm for inspection; kube-router itself programs IPVS over netlink).
- busybox: a lab-owned test image with a shell, wget, nslookup, nc and httpd (Debian's busybox-static).
Every image but pause has a small distroless-like base layer (passwd/group with root, nobody and
nonroot, /tmp); it is the same layer, so containerd stores it once.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from components import debian
from components.kubeadm_pins import KubeadmPins
from components.manifest import Artifact, Source
from components.oci import Entry, ImageConfig
from components.stamps import inputs_hash

REGISTRY = "registry.k8s.io"
TEST_REGISTRY = "kbootstrap.test"
# Packages whose files make up kube-proxy's (and flannel's) netfilter userland.
NETFILTER_PACKAGES = ("iptables", "nftables", "ipset", "conntrack")
# kube-router's image: Kubespray's kube_router_image_repo (docker_image_repo is docker.io), tag vVERSION.
KUBE_ROUTER_REPOSITORY = "docker.io/cloudnativelabs/kube-router"
# What kube-router execs beyond the netfilter tools (ip, modprobe), and ipvsadm as its Dockerfile has.
KUBE_ROUTER_PACKAGES = ("iproute2", "kmod", "ipvsadm")
# The shell its DaemonSet's init container installs the CNI configuration with (upstream's image is
# Alpine and has one): busybox, with only these applets, so no busybox tool shadows a real one.
KUBE_ROUTER_SHELL = ("sh", "cp", "mv", "rm", "test", "[")
# Debian's iptables postinst: update-alternatives makes the nft variants the default (priority 20).
IPTABLES_ALTERNATIVES = {
    "/usr/sbin/iptables": "iptables-nft",
    "/usr/sbin/iptables-save": "iptables-nft-save",
    "/usr/sbin/iptables-restore": "iptables-nft-restore",
    "/usr/sbin/ip6tables": "ip6tables-nft",
    "/usr/sbin/ip6tables-save": "ip6tables-nft-save",
    "/usr/sbin/ip6tables-restore": "ip6tables-nft-restore",
}


def file_capability(cap_bits: int) -> bytes:
    """security.capability (VFS_CAP_REVISION_2) for `setcap CAPS=+ep`: permitted + effective flag."""
    magic = 0x02000000 | 0x1  # VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    words = [magic, cap_bits & 0xFFFFFFFF, 0, (cap_bits >> 32) & 0xFFFFFFFF, 0]
    return b"".join(w.to_bytes(4, "little") for w in words)


CAP_NET_BIND_SERVICE = file_capability(1 << 10)

BASE_LAYER: tuple[Entry, ...] = (
    Entry("/etc/passwd", mode=0o644, data=(
        b"root:x:0:0:root:/root:/sbin/nologin\n"
        b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
    )),
    Entry("/etc/group", mode=0o644, data=b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"),
    Entry("/etc/nsswitch.conf", mode=0o644, data=b"hosts: files dns\n"),
    Entry("/root", kind="dir", mode=0o700),
    Entry("/home/nonroot", kind="dir", mode=0o700, uid=65532, gid=65532),
    Entry("/tmp", kind="dir", mode=0o1777),
)


@dataclass(frozen=True)
class ImagePlan:
    name: str
    reference: str
    version: str
    source: Source
    contents: tuple[Source, ...]
    layers: tuple[tuple[Entry, ...], ...]
    config: ImageConfig

    def inputs(self) -> str:
        """A hash of everything the archive is made of (file content by sha256 or size:mtime)."""
        parts: list[str | bytes] = [self.reference, json.dumps(self.config.__dict__, sort_keys=True, default=list)]
        for layer in self.layers:
            parts.append("layer")
            for e in sorted(layer, key=lambda e: e.path):
                parts.append(f"{e.path}|{e.kind}|{e.mode:o}|{e.uid}|{e.gid}|{e.target}|{e.content_id}")
                parts.append(e.data if e.data is not None else b"")
                parts.extend(f"{k}={v.hex()}" for k, v in sorted(e.xattrs.items()))
        parts.extend(json.dumps(s.to_json(), sort_keys=True) for s in self.contents)
        return inputs_hash(parts)


def _bin(binaries: Mapping[str, Artifact], release_dir: Path, name: str, image_path: str,
         xattrs: Mapping[str, bytes] | None = None) -> Entry:
    a = binaries[name]
    return Entry(image_path, mode=0o755, source=release_dir / a.path, content_id=a.sha256, xattrs=xattrs or {})


def _debian_layer(roots: Sequence[str], below: Sequence[Source] = ()) -> tuple[tuple[Entry, ...], tuple[Source, ...]]:
    """The files of `roots` and their dependencies, less the packages a lower layer (`below`) has."""
    present = {s.debian for s in below}
    packages = [p for p in debian.closure(roots) if p.name not in present]
    return tuple(debian.entries(packages)), tuple(Source(p.version, debian=p.name) for p in packages)


def _busybox_layer(only: tuple[str, ...] = ()) -> tuple[tuple[Entry, ...], Source]:
    """Debian's busybox-static with its applets as symlinks (only: just these, as /bin/NAME)."""
    (pkg,) = [p for p in debian.closure(["busybox-static"]) if p.name == "busybox-static"]
    binary = Path("/bin/busybox")
    applets = [f"bin/{a}" for a in only] or subprocess.run(
        [str(binary), "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    st = binary.stat()
    entries = [Entry("/bin/busybox", mode=0o755, source=binary, content_id=f"{st.st_size}:{st.st_mtime_ns}")]
    entries += [Entry("/" + a, kind="symlink", mode=0o777, target="/bin/busybox")
                for a in applets if a != "bin/busybox"]
    return tuple(entries), Source(pkg.version, debian=pkg.name)


def kubernetes_images(
    release: str,
    pins: KubeadmPins,
    binaries: Mapping[str, Artifact],
    release_dir: Path,
    flannel_module_dir: Path | None = None,
) -> list[ImagePlan]:
    """Every image of a full release; the flannel image too when its module dir is given (built)."""
    runner = _bin(binaries, release_dir, "kube-log-runner", "/go-runner")
    k8s = binaries["kube-apiserver"].source
    k8s_source = Source(k8s.version, module=k8s.module)
    netfilter, netfilter_sources = _debian_layer(NETFILTER_PACKAGES)
    alternatives = tuple(Entry(link, kind="symlink", mode=0o777, target=target)
                         for link, target in IPTABLES_ALTERNATIVES.items())
    plans = []
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        caps = {"security.capability": CAP_NET_BIND_SERVICE} if name == "kube-apiserver" else None
        top = (_bin(binaries, release_dir, name, f"/usr/local/bin/{name}", caps), runner)
        layers: tuple[tuple[Entry, ...], ...] = (BASE_LAYER, top)
        contents: tuple[Source, ...] = (binaries[name].source, binaries["kube-log-runner"].source)
        if name == "kube-proxy":
            layers = (BASE_LAYER, netfilter + alternatives, top)
            contents += netfilter_sources
        plans.append(ImagePlan(name, f"{REGISTRY}/{name}:{release}", release, k8s_source, contents, layers,
                               ImageConfig(entrypoint=("/go-runner",))))

    etcd = binaries["etcd"]
    plans.append(ImagePlan(
        "etcd", f"{REGISTRY}/etcd:{pins.etcd_image_tag}", pins.etcd_image_tag,
        Source(etcd.version, module="go.etcd.io/etcd"),
        tuple(binaries[n].source for n in ("etcd", "etcdctl", "etcdutl")),
        (BASE_LAYER, (
            *(_bin(binaries, release_dir, n, f"/usr/local/bin/{n}") for n in ("etcd", "etcdctl", "etcdutl")),
            Entry("/var/etcd", kind="dir", mode=0o755),
            Entry("/var/lib/etcd", kind="dir", mode=0o755),
        )),
        ImageConfig(cmd=("/usr/local/bin/etcd",), working_dir="/var/lib/etcd", exposed_ports=("2379/tcp", "2380/tcp")),
    ))

    coredns = binaries["coredns"]
    plans.append(ImagePlan(
        "coredns", f"{REGISTRY}/coredns/coredns:{pins.coredns_image_tag}", pins.coredns_image_tag,
        Source(coredns.source.version, module=coredns.source.module), (coredns.source,),
        (BASE_LAYER, (_bin(binaries, release_dir, "coredns", "/coredns",
                           {"security.capability": CAP_NET_BIND_SERVICE}),)),
        ImageConfig(entrypoint=("/coredns",), user="65532:65532", working_dir="/", exposed_ports=("53/tcp", "53/udp")),
    ))

    pause = binaries["pause"]
    plans.append(ImagePlan(
        "pause", f"{REGISTRY}/pause:{pins.pause_image_tag}", pins.pause_image_tag, pause.source, (pause.source,),
        ((_bin(binaries, release_dir, "pause", "/pause"),),),
        ImageConfig(entrypoint=("/pause",), user="65535:65535"),
    ))

    busybox, busybox_source = _busybox_layer()
    plans.append(ImagePlan(
        "busybox", f"{TEST_REGISTRY}/busybox:{debian.image_tag(busybox_source.version)}", busybox_source.version,
        busybox_source, (busybox_source,), (BASE_LAYER, busybox), ImageConfig(cmd=("sh",)),
    ))

    kube_router = binaries["kube-router"]
    tools, tools_sources = _debian_layer(KUBE_ROUTER_PACKAGES, below=netfilter_sources)
    shell, shell_source = _busybox_layer(KUBE_ROUTER_SHELL)
    plans.append(ImagePlan(
        "kube-router", f"{KUBE_ROUTER_REPOSITORY}:{kube_router.version}", kube_router.version,
        Source(kube_router.source.version, module=kube_router.source.module),
        (kube_router.source, binaries["gobgp"].source, *netfilter_sources, *tools_sources, shell_source),
        (BASE_LAYER, netfilter + alternatives, tools, shell, (
            _bin(binaries, release_dir, "kube-router", "/usr/local/bin/kube-router"),
            _bin(binaries, release_dir, "gobgp", "/usr/local/bin/gobgp"),
            Entry("/var/lib/gobgp", kind="dir", mode=0o755),
        )),
        ImageConfig(entrypoint=("/usr/local/bin/kube-router",), working_dir="/root"),
    ))

    if flannel_module_dir is not None:
        flanneld = binaries["flanneld"]
        script = flannel_module_dir / "dist/mk-docker-opts.sh"
        plans.append(ImagePlan(
            "flannel", f"ghcr.io/flannel-io/flannel:{flanneld.version}", flanneld.version,
            Source(flanneld.source.version, module=flanneld.source.module),
            (flanneld.source, binaries["install-conf"].source, *netfilter_sources, busybox_source),
            (BASE_LAYER, netfilter + alternatives, busybox, (
                _bin(binaries, release_dir, "flanneld", "/opt/bin/flanneld"),
                _bin(binaries, release_dir, "install-conf", "/opt/bin/install-conf"),
                Entry("/opt/bin/mk-docker-opts.sh", mode=0o755, source=script, content_id=flanneld.source.version),
            )),
            ImageConfig(entrypoint=("/opt/bin/flanneld",)),
        ))
    return plans
