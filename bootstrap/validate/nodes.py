"""`kbootstrap validate`: each node against the spec, as testinfra (pytest-testinfra) checks.

The checks are data (`NodeCheck`), computed from the spec, the node's roles, the bundle and the
phases that were skipped; `run_checks` evaluates them with any testinfra `Host`. So the same list
serves `kbootstrap validate` (over our open SSH connections) and, later, Molecule's verify step
(testinfra's own `host` fixture).

Backend choice: a small testinfra backend over our `Target` (`TargetBackend`) rather than testinfra's
paramiko backend. It reuses the connection `init -i` already holds (validate_fleet must not reconnect),
keeps our host-key rules (known_hosts from the inventory, changed keys always refused, TOFU only on
request) without writing an ssh_config, and honours `become` the way every other command does.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import testinfra.host
import testinfra.modules
from testinfra.backend.base import BaseBackend, CommandResult

from bootstrap.artifacts.bundle import Bundle
from bootstrap.pki.catalog import certs_for
from bootstrap.render.kubeconfig import node_kubeconfigs
from bootstrap.render.node import (
    CONTAINERD_CONFIG,
    CRICTL_CONFIG,
    MODULES,
    MODULES_FILE,
    SYSCTL_FILE,
    required_sysctls,
    sandbox_image,
    stamped_sha256_script,
)
from bootstrap.spec.inventory import InventoryHost
from bootstrap.spec.model import KUBERNETES_DIR, MANIFESTS_DIR, ClusterSpec, EtcdMode
from bootstrap.transport.base import Target
from bootstrap.transport.batch import commands_batch, parse_commands_batch
from bootstrap.validate.netcheck import one_line

BIN_DIR = "/usr/bin"
PASS, FAIL, SKIP, ERROR = "pass", "fail", "skip", "error"
COMMAND_TIMEOUT = 60.0

# Version skew policy (kubernetes.io/releases/version-skew-policy), relative to the cluster's minor.
SKEW = {"kubectl": (-1, 1), "kubelet": (-3, 0), "kubeadm": (0, 0)}
VERSION_COMMAND = {
    "kubectl": "{} version --client 2>/dev/null",
    "kubelet": "{} --version 2>/dev/null",
    "kubeadm": "{} version -o short 2>/dev/null",
}
# testinfra's file checks, on paths that need no quoting (the batch stat prints them as given).
FILE_CHECK = re.compile(r"^(?P<what>test -e|stat -Lc %a|stat -Lc %U) (?P<path>/[A-Za-z0-9_./+-]+)$")
CA_KEYS = ("ca.key", "front-proxy-ca.key", "etcd/ca.key", "sa.key")  # signing keys: never on a worker

# The testinfra modules the checks use. testinfra imports each on first use; checks run in threads,
# and two first uses at once can fail a check: under pytest every testinfra import is an assertion
# rewrite (ast.parse), and CPython 3.11 keeps the AST builder's recursion counter per interpreter, not
# per thread ("AST constructor recursion depth mismatch", cpython gh-106905). So import them once, here.
TESTINFRA_MODULES = ("file", "service", "sysctl", "system_info")  # service asks system_info which init
for _module in TESTINFRA_MODULES:
    testinfra.modules.get_module_class(_module)


# ---- testinfra over our transport -------------------------------------------------------------------
class TargetBackend(BaseBackend):
    """testinfra commands run through an open kbootstrap Target (one exec channel per command), or
    answered from a prefetch: every command the checks will ask run on the node in ONE script."""

    NAME = "kbootstrap"

    def __init__(self, target: Target, **kwargs: Any) -> None:
        self.target = target
        self.answers: dict[str, tuple[int, str, str]] = {}
        super().__init__(target.name, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)
        if cmd in self.answers:
            rc, out, err = self.answers[cmd]
        else:
            result = self.target.run(cmd + "\n", timeout=COMMAND_TIMEOUT)
            rc, out, err = result.exit_code, result.stdout, result.stderr
        return self.result(rc, self.encode(cmd), out, err)

    def prefetch(self, commands: Sequence[str]) -> None:
        """Run commands on the node in one script; their answers serve later `run`s of the same
        command line (a command the checks ask that was not foreseen simply runs then)."""
        todo = [c for c in dict.fromkeys(commands) if c not in self.answers]
        # The file checks (`test -e P`, `stat -Lc %a P`, `stat -Lc %U P`: a hundred on a control
        # plane) ride on one `stat` of every path: each would be a fork and an exec on the node.
        asked, stat_all = file_checks(todo)
        todo = [c for c in todo if c not in asked] + ([stat_all] if stat_all else [])
        if not todo:
            return
        script, mark = commands_batch(todo)
        result = self.target.run(script, timeout=COMMAND_TIMEOUT * 2)
        for i, (rc, out, err) in parse_commands_batch(result.stdout, mark).items():
            if i < len(todo):
                self.answers[todo[i]] = (rc, out, err)
        if stat_all is not None and stat_all in self.answers:
            self._answer_file_checks(asked, self.answers.pop(stat_all)[1])


    def _answer_file_checks(self, asked: Mapping[str, tuple[str, str]], stat_out: str) -> None:
        """The file checks' answers, from one `stat` line per path that exists."""
        found = {w[2]: (w[0], w[1]) for w in (line.split(" ", 2) for line in stat_out.splitlines()) if len(w) == 3}
        for cmd, (what, path) in asked.items():
            if path not in found:
                self.answers[cmd] = (1, "", "" if what == "test -e" else f"stat: cannot statx '{path}'\n")
            elif what == "test -e":
                self.answers[cmd] = (0, "", "")
            else:
                self.answers[cmd] = (0, found[path][0 if what == "stat -Lc %a" else 1] + "\n", "")


def file_checks(commands: Sequence[str]) -> tuple[dict[str, tuple[str, str]], str | None]:
    """testinfra's file checks among commands ({command: (what, path)}), and the one `stat` of
    every path that answers them all (None when there are none)."""
    asked = {cmd: (m["what"], m["path"]) for cmd in commands if (m := FILE_CHECK.match(cmd)) is not None}
    if not asked:
        return {}, None
    paths = sorted({path for _, path in asked.values()})
    return asked, "stat -L -c '%a %U %n' -- " + " ".join(paths) + " 2>/dev/null; true"


class RecordingBackend(BaseBackend):
    """Records the commands checks would run, answering with plausible output so each check goes on
    asking (a file that exists, owned by root, mode 0644): the list a prefetch then runs for real."""

    NAME = "kbootstrap-record"

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.commands: list[str] = []
        super().__init__(name, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)
        self.commands.append(cmd)
        out = ""
        if cmd.startswith("uname -s"):
            out = "Linux\n"
        elif cmd.startswith(("stat -c %a", "stat -Lc %a")):
            out = "644\n"
        elif cmd.startswith(("stat -c %U", "stat -c %G", "stat -Lc %U", "stat -Lc %G")):
            out = "root\n"
        return self.result(0, self.encode(cmd), out, "")


def infra_host(target: Target) -> testinfra.host.Host:
    return testinfra.host.Host(TargetBackend(target))


# ---- the checks, as data ----------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeCheck:
    id: str  # stable and readable: "file-mode /etc/kubernetes/pki/ca.key"
    kind: str  # service | sysctl | contains | module | swap | exists | mode | tree | absent | binary
    subject: str  # unit, sysctl key, path or directory
    expect: str = ""  # value, text, sha256
    forbid: int = 0  # mode bits that must not be set (0o177: 0600 or stricter)
    pattern: str = ""  # tree: find -name pattern
    why: str = ""
    skip: str = ""  # not evaluated, and why


@dataclass(frozen=True)
class CheckResult:
    check: NodeCheck
    status: str  # pass | fail | skip | error
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.check.id, "kind": self.check.kind, "subject": self.check.subject,
                "status": self.status, "message": self.message, "why": self.check.why}


def _skipped(phase: str, skipped: Collection[str]) -> str:
    """The skipped phase covering `phase` ("binaries" covers "binaries/kubelet"), or ""."""
    parts = phase.split("/")
    for i in range(len(parts), 0, -1):
        if "/".join(parts[:i]) in skipped:
            return "/".join(parts[:i])
    return ""


def _skip_reason(phase: str, skipped: Collection[str]) -> str:
    p = _skipped(phase, skipped)
    return f"phase {p} was skipped" if p else ""


def node_checks(
    host: InventoryHost,
    spec: ClusterSpec,
    bundle: Bundle | None = None,
    skipped: Collection[str] = (),
    *,
    init_node: bool = True,
) -> list[NodeCheck]:
    """Everything `init -i` promises about this node, given its roles. init_node: the first control
    plane, the only one holding super-admin.conf."""
    checks: list[NodeCheck] = []
    kernel = _skip_reason("kernel", skipped)
    runtime = _skip_reason("container-runtime", skipped)
    certs = _skip_reason("certs", skipped)
    pki = spec.cert_dir.rstrip("/")

    # Kernel: what kubeadm's preflight and CNI plugins need.
    for key, value in required_sysctls(spec).items():
        checks.append(NodeCheck(f"sysctl {key}", "sysctl", key, value, why="kubeadm preflight; pod routing",
                                skip=kernel))
    checks.append(NodeCheck(f"file {SYSCTL_FILE}", "exists", SYSCTL_FILE, why="sysctls survive a reboot", skip=kernel))
    for mod in MODULES:
        checks.append(NodeCheck(f"module {mod} configured", "contains", MODULES_FILE, mod,
                                why="loaded at boot (modules-load.d)", skip=kernel))
        checks.append(NodeCheck(f"module {mod} loaded", "module", mod, why="overlayfs snapshots; bridged traffic "
                                "through iptables", skip=kernel))
    checks.append(NodeCheck("swap off", "swap", "/proc/swaps", why="the kubelet refuses to start with swap on "
                            "(by default)", skip=kernel))

    # Container runtime.
    checks.append(NodeCheck("service containerd", "service", "containerd", why="the CRI the kubelet talks to",
                            skip=runtime))
    checks.append(NodeCheck("containerd SystemdCgroup", "contains", CONTAINERD_CONFIG, "SystemdCgroup = true",
                            why="the kubelet's cgroupDriver is systemd", skip=runtime))
    checks.append(NodeCheck("containerd sandbox image", "contains", CONTAINERD_CONFIG, f'"{sandbox_image(spec)}"',
                            why="the pause image kubeadm expects", skip=runtime))
    checks.append(NodeCheck(f"file {CRICTL_CONFIG}", "exists", CRICTL_CONFIG, why="crictl finds containerd",
                            skip=runtime))

    # Binaries: present, the bundle's checksum, a version the skew policy allows.
    for name in ("kubectl", "kubelet", "kubeadm"):
        reason = _skip_reason(f"binaries/{name}", skipped)
        want = bundle.sha256(f"bin/{name}") if bundle and f"bin/{name}" in bundle.files else ""
        if not reason and bundle is not None and not want:
            reason = f"the bundle has no bin/{name}"
        checks.append(NodeCheck(f"binary {name}", "binary", f"{BIN_DIR}/{name}", want,
                                why="installed from the bundle, checksum verified", skip=reason))
    checks.append(NodeCheck("CNI plugins", "exists", "/opt/cni/bin/loopback", why="containerd and the kubelet "
                            "look in /opt/cni/bin", skip=_skip_reason("binaries/cni", skipped)))

    # etcd as a systemd unit (Kubespray's host mode).
    if host.is_etcd and spec.etcd_external is None and spec.etcd_mode == EtcdMode.HOST:
        checks.append(NodeCheck("service etcd", "service", "etcd", why="etcd member in host mode",
                                skip=_skip_reason("etcd", skipped)))

    # PKI: every key 0600, certificates at the hardening profile's mode; CA keys only where they belong.
    cert_forbid = 0o777 & ~spec.hardening.cert_file_mode
    if host.is_control_plane or host.is_worker:
        checks.append(NodeCheck(f"file {pki}/ca.crt", "mode", f"{pki}/ca.crt", forbid=cert_forbid,
                                why="every node trusts the cluster CA", skip=certs))
    else:  # an etcd member on a host of its own is no Kubernetes node: its trust is the etcd CA
        checks.append(NodeCheck(f"file {pki}/etcd/ca.crt", "mode", f"{pki}/etcd/ca.crt", forbid=cert_forbid,
                                why="etcd members trust the etcd CA", skip=certs))
    checks.append(NodeCheck(f"keys in {pki} 0600", "tree", pki, pattern="*.key", forbid=0o177,
                            why="private keys readable by root only (CIS 1.1.21)", skip=certs))
    checks.append(NodeCheck(f"certs in {pki} {spec.hardening.cert_file_mode:04o}", "tree", pki, pattern="*.crt",
                            forbid=cert_forbid, why=f"hardening profile {spec.hardening.profile} (CIS 1.1.20)",
                            skip=certs))
    if host.is_control_plane:
        for cert in certs_for(spec):
            for path in (cert.cert_path(pki), cert.key_path(pki)):
                forbid = 0o177 if path.endswith(".key") else cert_forbid
                checks.append(NodeCheck(f"file {path}", "mode", path, forbid=forbid, why=cert.long_name, skip=certs))
        for sa in (f"{pki}/sa.key", f"{pki}/sa.pub"):
            checks.append(NodeCheck(f"file {sa}", "mode", sa, forbid=0o177 if sa.endswith(".key") else 0o133,
                                    why="service account token signing", skip=certs))
        kc_skip = _skip_reason("kubeconfig", skipped)
        for kc in node_kubeconfigs(spec, init_node=init_node):
            checks.append(NodeCheck(f"file {kc.path()}", "mode", kc.path(), forbid=0o177,
                                    why="kubeconfigs embed client keys (CIS 1.1.13-1.1.16)", skip=kc_skip))
        checks.append(NodeCheck(f"kubeconfigs in {KUBERNETES_DIR} 0600", "tree", KUBERNETES_DIR, pattern="*.conf",
                                forbid=0o177, why="kubeconfigs embed client keys", skip=kc_skip))
        cp_skip = _skip_reason("control-plane", skipped)
        for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            path = f"{MANIFESTS_DIR}/{comp}.yaml"
            checks.append(NodeCheck(f"file {path}", "mode", path, forbid=0o177, why="static pod manifest (CIS 1.1.1-"
                                    "1.1.6)", skip=cp_skip))
        checks.append(NodeCheck(f"manifests in {MANIFESTS_DIR} not group/world readable", "tree", MANIFESTS_DIR,
                                pattern="*", forbid=0o077, why="manifests carry flags and paths of secrets",
                                skip=cp_skip))
    elif host.is_etcd:
        allowed = {"etcd/ca.key"}  # an etcd-only member signs its own etcd certs
        for key in CA_KEYS:
            if key not in allowed:
                checks.append(NodeCheck(f"no {pki}/{key}", "absent", f"{pki}/{key}",
                                        why="only control planes hold cluster signing keys", skip=certs))
    else:
        for key in CA_KEYS:
            checks.append(NodeCheck(f"no {pki}/{key}", "absent", f"{pki}/{key}",
                                    why="a worker never holds a CA private key", skip=certs))
    return checks


# ---- evaluation -------------------------------------------------------------------------------------
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def _mode(m: int) -> str:
    return f"{m:04o}"


def _eval(host: testinfra.host.Host, check: NodeCheck, spec: ClusterSpec) -> list[CheckResult]:
    c = check
    if c.kind == "service":
        svc = host.service(c.subject)
        if not svc.is_running:
            state = host.run("systemctl is-active %s", c.subject).stdout.strip() or "unknown"
            return [CheckResult(c, FAIL, f"{c.subject} is not running (systemctl: {state})")]
        if not svc.is_enabled:
            return [CheckResult(c, FAIL, f"{c.subject} runs but is not enabled: it will not start after a reboot")]
        return [CheckResult(c, PASS, "active, enabled")]
    if c.kind == "sysctl":
        got = str(host.sysctl(c.subject))
        ok = got == c.expect
        return [CheckResult(c, PASS if ok else FAIL, f"{c.subject} = {got}" + ("" if ok else f", want {c.expect}"))]
    if c.kind == "contains":
        f = host.file(c.subject)
        if not f.exists:
            return [CheckResult(c, FAIL, f"{c.subject} is missing")]
        ok = c.expect in f.content_string
        return [CheckResult(c, PASS if ok else FAIL, f"{c.subject} {'has' if ok else 'lacks'} {c.expect!r}")]
    if c.kind == "module":
        modules = host.file("/proc/modules")
        if not modules.exists:
            return [CheckResult(c, SKIP, "the kernel's module list is not visible here (/proc/modules: container)")]
        loaded = {ln.split()[0] for ln in modules.content_string.splitlines() if ln.strip()}
        ok = c.subject in loaded
        return [CheckResult(c, PASS if ok else FAIL, f"{c.subject} {'is' if ok else 'is not'} loaded")]
    if c.kind == "swap":
        active = host.file(c.subject).content_string.strip().splitlines()[1:]
        if active:
            return [CheckResult(c, FAIL, "swap is on: " + ", ".join(ln.split()[0] for ln in active))]
        return [CheckResult(c, PASS, "no active swap")]
    if c.kind == "exists":
        ok = host.file(c.subject).exists
        return [CheckResult(c, PASS if ok else FAIL, f"{c.subject} {'exists' if ok else 'is missing'}")]
    if c.kind == "absent":
        present = host.file(c.subject).exists
        return [CheckResult(c, FAIL if present else PASS, f"{c.subject} {'is present' if present else 'absent'}")]
    if c.kind == "mode":
        f = host.file(c.subject)
        if not f.exists:
            return [CheckResult(c, FAIL, f"{c.subject} is missing")]
        mode, user = f.mode, f.user
        problems = []
        if mode & c.forbid:
            problems.append(f"mode {_mode(mode)}, must be {_mode(0o777 & ~c.forbid)} or stricter")
        if user != "root":
            problems.append(f"owned by {user}, must be root")
        return [CheckResult(c, FAIL if problems else PASS, "; ".join(problems) or f"mode {_mode(mode)}")]
    if c.kind == "tree":
        out = host.run("find %s -type f -name %s -printf '%%m %%u %%p\\n' 2>/dev/null", c.subject, c.pattern)
        results = []
        for line in sorted(out.stdout.splitlines()):
            parts = line.split(" ", 2)
            if len(parts) < 3:
                continue
            mode, user, path = int(parts[0], 8), parts[1], parts[2]
            if mode & c.forbid:
                msg = f"mode {_mode(mode)}, must be {_mode(0o777 & ~c.forbid)} or stricter"
                results.append(CheckResult(NodeCheck(f"file {path}", "mode", path, forbid=c.forbid, why=c.why),
                                           FAIL, msg))
            elif user != "root":
                results.append(CheckResult(NodeCheck(f"file {path}", "mode", path, forbid=c.forbid, why=c.why),
                                           FAIL, f"owned by {user}, must be root"))
        n = len(out.stdout.splitlines())
        return results or [CheckResult(c, PASS, f"{n} file(s) under {c.subject}")]
    if c.kind == "binary":
        return [_eval_binary(host, c, spec)]
    raise ValueError(f"unknown check kind {c.kind!r}")


def _eval_binary(host: testinfra.host.Host, c: NodeCheck, spec: ClusterSpec) -> CheckResult:
    # Both commands are asked before either answer is judged, so a prefetch foresees both.
    how, _, got = host.run(stamped_sha256_script(c.subject)).stdout.strip().partition(" ")
    name = c.subject.rsplit("/", 1)[-1]
    out = host.run(VERSION_COMMAND.get(name, "{} --version 2>/dev/null").format(shlex.quote(c.subject)))
    if how == "missing":
        return CheckResult(c, FAIL, f"{c.subject} is missing")
    if c.expect and got != c.expect:
        return CheckResult(c, FAIL, f"{c.subject}: sha256 {got[:12]}..., the bundle has {c.expect[:12]}...")
    m = _VERSION.search(out.stdout)
    if not m:
        return CheckResult(c, FAIL, f"{c.subject}: cannot tell its version (exit {out.rc})")
    want = spec.version
    lo, hi = SKEW.get(name, (0, 0))
    major, minor = int(m[1]), int(m[2])
    version = f"v{m[1]}.{m[2]}.{m[3]}"
    if major != want.major or not want.minor + lo <= minor <= want.minor + hi:
        allowed = f"1.{want.minor + lo}" + (f"-1.{want.minor + hi}" if hi != lo else "")
        return CheckResult(c, FAIL, f"{c.subject} is {version}; the skew policy allows {allowed} for a "
                           f"v{want.major}.{want.minor} cluster")
    checked = " (stamped at install, file unchanged since)" if how == "stamped" else ""
    return CheckResult(c, PASS, f"{version}" + (f", sha256 matches the bundle{checked}" if c.expect else ""))


# Concurrent checks per node, each an exec channel on the one connection: sshd refuses more than
# MaxSessions (default 10) channels per connection.
CHECKS_IN_FLIGHT = 6  # SSHTarget allows as many channels at once


def run_checks(host: testinfra.host.Host, checks: Sequence[NodeCheck], spec: ClusterSpec) -> list[CheckResult]:
    """Evaluate checks with a testinfra Host. A check that cannot run is an error naming why.

    A control plane has ~150 checks and each testinfra command is a round trip; running them
    concurrently over the node's one connection turns minutes of latency into a second."""

    def one(c: NodeCheck) -> list[CheckResult]:
        if c.skip:
            return [CheckResult(c, SKIP, c.skip)]
        try:
            return _eval(host, c, spec)
        except Exception as exc:  # a lost host or a surprising answer: report it, go on with the rest
            return [CheckResult(c, ERROR, one_line(exc))]

    if isinstance(host.backend, TargetBackend):
        # One round trip for (nearly) every command: the checks are run once against a recorder (a
        # Host of its own, so nothing it caches leaks into the real one), then those commands at once.
        recorder = RecordingBackend(host.backend.hostname)
        dry = testinfra.host.Host(recorder)
        for c in checks:
            if not c.skip:
                with contextlib.suppress(Exception):
                    _eval(dry, c, spec)
        # A failed prefetch costs only speed: the checks then run their commands one by one.
        with contextlib.suppress(Exception):
            host.backend.prefetch(recorder.commands)

    with ThreadPoolExecutor(max_workers=CHECKS_IN_FLIGHT, thread_name_prefix="check") as pool:
        out = [r for results in pool.map(one, checks) for r in results]
    # A file can fail both its own check and a directory-wide one: report it once.
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for r in out:
        key = (r.check.id, r.status, r.message)
        if r.status == PASS or key not in seen:
            unique.append(r)
            seen.add(key)
    return unique


@dataclass
class NodeReport:
    node: str
    results: list[CheckResult] = field(default_factory=list)
    error: str = ""  # the node could not be checked at all

    def counts(self) -> dict[str, int]:
        c = {PASS: 0, FAIL: 0, SKIP: 0, ERROR: 0}
        for r in self.results:
            c[r.status] += 1
        return c

    @property
    def failed(self) -> bool:
        return bool(self.error) or any(r.status in (FAIL, ERROR) for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "ok": not self.failed, "error": self.error or None, "counts": self.counts(),
                "checks": [r.to_json() for r in self.results]}


def validate_nodes(
    hosts: Sequence[InventoryHost],
    spec_for: Callable[[InventoryHost], ClusterSpec],
    targets: Mapping[str, Target],
    *,
    bundle: Bundle | None = None,
    skipped: Collection[str] = (),
    unreachable: Mapping[str, str] | None = None,
    forks: int = 64,
) -> list[NodeReport]:
    """Every node's checks, nodes in parallel; a node without a connection is reported, not dropped."""

    first_cp = next((h.name for h in hosts if h.is_control_plane), None)

    def one(h: InventoryHost) -> NodeReport:
        target = targets.get(h.name)
        if target is None:
            return NodeReport(h.name, error=(unreachable or {}).get(h.name) or "no connection")
        spec = spec_for(h)
        checks = node_checks(h, spec, bundle, skipped, init_node=h.name == first_cp)
        return NodeReport(h.name, run_checks(infra_host(target), checks, spec))

    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts))), thread_name_prefix="validate") as pool:
        return list(pool.map(one, hosts))
