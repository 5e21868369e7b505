"""etcd membership and health, through `etcdctl` on a node with its own client certificate.

One module for what init (health after the members start), join (a learner added, started,
promoted), remove-node and reset (a member removed) do to an etcd cluster. Every value that goes
into a command line is quoted; names and URLs come from validated specs anyway.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.errors import PhaseError
from bootstrap.transport.base import CommandResult, Target, read_only

Etcdctl = Callable[[str], CommandResult]
LOCAL_ENDPOINT = "https://127.0.0.1:2379"
COMMAND_TIMEOUT = 15  # etcdctl's own --command-timeout; the script's timeout is longer, so its message shows
HEALTH_TIMEOUT = 60.0  # how long a member waits for its cluster's quorum after it (re)started

# etcd refuses a membership change while the members would not be a healthy quorum after it, and a
# member counts as active only ~5 s after it connected: right after a join, `member add` (the next
# member) and `member remove` answer "unhealthy cluster" for a while. kubeadm retries its etcd calls
# with backoff; so do we, for those answers only.
RETRYABLE_RECONFIG = ("unhealthy cluster", "too many requests")


READ_ONLY_COMMANDS = ("endpoint health", "endpoint status", "member list")  # the rest change the cluster


def etcdctl_on(target: Target, cert_dir: str, endpoints: str = LOCAL_ENDPOINT) -> Etcdctl:
    """etcdctl on a member with its healthcheck-client certificate (kubeadm's etcd client cert).
    The returned function takes etcdctl's arguments, already quoted by the caller."""
    pki = cert_dir.rstrip("/") + "/etcd"
    q = shlex.quote
    base = (
        f"ETCDCTL_API=3 etcdctl --endpoints={q(endpoints)} --cacert={q(pki + '/ca.crt')} "
        f"--cert={q(pki + '/healthcheck-client.crt')} --key={q(pki + '/healthcheck-client.key')} "
        f"--command-timeout={COMMAND_TIMEOUT}s --dial-timeout=5s"
    )

    def etcdctl(args: str) -> CommandResult:
        script = f"{base} {args}"
        if args.startswith(READ_ONLY_COMMANDS):
            return read_only(target, script, timeout=COMMAND_TIMEOUT + 30)
        return target.run(script, timeout=COMMAND_TIMEOUT + 30)

    return etcdctl


def last_line(result: CommandResult) -> str:
    text = (result.stderr or result.stdout).strip()
    return text.splitlines()[-1][:300] if text else f"exit {result.exit_code}"


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def hex_id(self) -> str:
        return format(self.id, "x")


def member_list(etcdctl: Etcdctl) -> list[Member]:
    result = etcdctl("member list -w json")
    if not result.ok:
        raise PhaseError(f"etcd member list failed: {last_line(result)}", hint="is the existing etcd cluster healthy?")
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise PhaseError("etcd member list: unreadable answer") from None
    return [
        Member(
            int(m["ID"]),
            str(m.get("name") or ""),
            tuple(m.get("peerURLs") or ()),
            tuple(m.get("clientURLs") or ()),
            bool(m.get("isLearner")),
        )
        for m in doc.get("members") or []
    ]


def reconfigure(etcdctl: Etcdctl, args: str, *, timeout: float = 40.0, interval: float = 2.0) -> CommandResult:
    """A `member add|remove` call, retried while etcd says the cluster is not ready for it."""
    deadline = time.monotonic() + timeout
    while True:
        result = etcdctl(args)
        text = (result.stdout + result.stderr).lower()
        if result.ok or not any(r in text for r in RETRYABLE_RECONFIG) or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def add_learner(etcdctl: Etcdctl, name: str, peer_url: str) -> CommandResult:
    return reconfigure(etcdctl, f"member add {shlex.quote(name)} --peer-urls={shlex.quote(peer_url)} --learner")


def remove_member(etcdctl: Etcdctl, hex_id: str, *, timeout: float = 40.0, interval: float = 2.0) -> CommandResult:
    return reconfigure(etcdctl, f"member remove {shlex.quote(hex_id)}", timeout=timeout, interval=interval)


def promote(etcdctl: Etcdctl, member: Member, *, timeout: float = 60.0) -> None:
    """A learner can be promoted only once it has caught up with the leader: retry until then."""
    deadline = time.monotonic() + timeout
    while True:
        result = etcdctl(f"member promote {shlex.quote(member.hex_id)}")
        if result.ok or "is not a learner" in (result.stderr + result.stdout):
            return
        if time.monotonic() > deadline:
            raise PhaseError(
                f"etcd member promote {member.hex_id} failed: {last_line(result)}",
                hint="rerun the join: the learner stays in the cluster and is promoted then",
            )
        time.sleep(2)


@dataclass(frozen=True)
class Health:
    """`endpoint health --cluster` as seen from one member."""

    healthy: tuple[str, ...]  # client URLs
    unhealthy: tuple[str, ...]
    local_ok: bool  # the member we asked through answers itself
    error: str = ""

    @property
    def total(self) -> int:
        return len(self.healthy) + len(self.unhealthy)

    @property
    def quorum(self) -> bool:
        return self.total > 0 and len(self.healthy) > self.total // 2

    def describe(self) -> str:
        text = f"{len(self.healthy)} of {self.total} members healthy"
        if self.unhealthy:
            text += " (unhealthy: " + ", ".join(self.unhealthy) + ")"
        return text


def cluster_health(etcdctl: Etcdctl, local_url: str | None = None) -> Health:
    """Each member's health as the cluster lists it (etcdctl prints healthy ones on stdout and the
    others on stderr, in every version we run: 3.4 to 3.7). The member we ask through is judged
    from that list when its advertised client URL (local_url) is in it, else asked on its own."""
    result = etcdctl("endpoint health --cluster")
    healthy: list[str] = []
    unhealthy: list[str] = []
    for line in (result.stdout + "\n" + result.stderr).splitlines():
        words = line.split()
        if len(words) >= 3 and words[0].startswith("https://"):
            (healthy if words[2].rstrip(":") == "healthy" else unhealthy).append(words[0])
    if not healthy and not unhealthy:
        return Health((), (), False, last_line(result))
    if local_url is not None and local_url in healthy + unhealthy:
        return Health(tuple(healthy), tuple(unhealthy), local_url in healthy)
    local = etcdctl("endpoint health").ok
    return Health(tuple(healthy), tuple(unhealthy), local)


def wait_quorum(
    etcdctl: Etcdctl,
    *,
    timeout: float = HEALTH_TIMEOUT,
    interval: float = 1.0,
    stopping: Callable[[], bool] = lambda: False,
    local_url: str | None = None,
) -> Health:
    """Until the member we ask through answers and a quorum of its cluster is healthy (a member
    that is down does not hold the others back); raises with what was last seen."""
    deadline = time.monotonic() + timeout
    while True:
        health = cluster_health(etcdctl, local_url)
        if health.local_ok and health.quorum:
            return health
        if time.monotonic() > deadline or stopping():
            seen = health.error or health.describe()
            raise PhaseError(
                f"etcd has no healthy quorum after {timeout:.0f}s: {seen}",
                hint="see `journalctl -u etcd` on the members",
            )
        time.sleep(interval)


def wait_all_healthy(etcdctl: Etcdctl, *, timeout: float = 40.0, interval: float = 5.0) -> Health:
    """After a membership change (join, remove): every member listed is healthy again."""
    deadline = time.monotonic() + timeout
    while True:
        health = cluster_health(etcdctl)
        if health.local_ok and health.total and not health.unhealthy:
            return health
        if time.monotonic() > deadline:
            raise PhaseError(
                f"etcd cluster is not healthy after {timeout:.0f}s: {health.error or health.describe()}",
                hint="see `journalctl -u etcd`",
            )
        time.sleep(interval)
