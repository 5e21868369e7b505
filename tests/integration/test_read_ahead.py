"""The rerun read-ahead (transport/snapshot.py) on this machine's real shell, with files of our own:
what the last run asked is answered in two round trips, with the same answers as asking live; an
answer serves once (a poll sees the node again); the first change through any host's target turns
every host's snapshot off; a slow fact is not predicted."""

from __future__ import annotations

import threading
from pathlib import Path

from kbtest import CountingLocalTarget

from bootstrap.transport.snapshot import Asked, SnapshotTarget, load_predictions, save_predictions


def requests(t: SnapshotTarget, tmp: Path) -> tuple[object, ...]:
    """What a phase would ask: files (one missing), a directory's mode, a listing, two facts."""
    (tmp / "d").mkdir(exist_ok=True, mode=0o750)
    return (
        t.read_many([str(tmp / "a"), str(tmp / "nope")]),
        t.dir_mode(str(tmp / "d")),
        t.list_dir(str(tmp)),
        t.fact(f"cat {tmp}/a; echo err >&2; exit 3"),
        t.fact(f"test -e {tmp}/nope"),
    )


def test_a_rerun_is_answered_in_two_round_trips_with_the_live_answers(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one\n")
    first = SnapshotTarget(CountingLocalTarget(), None, threading.Event())
    live = requests(first, tmp_path)
    save_predictions(tmp_path.parent / f"{tmp_path.name}.json", {"here": first.asked})
    predicted = load_predictions(tmp_path.parent / f"{tmp_path.name}.json")["here"]
    assert predicted.facts and predicted.reads and predicted.dirs and predicted.lists

    inner = CountingLocalTarget()
    second = SnapshotTarget(inner, predicted, threading.Event())
    second.warm()
    assert inner.calls == 2  # one read of the files, one script for the rest
    assert requests(second, tmp_path) == live
    assert inner.calls == 2 and second.served == 5
    # Each answer serves once: asking again is a poll, and sees the node as it is now.
    (tmp_path / "a").write_text("two\n")
    assert second.fact(f"cat {tmp_path}/a; echo err >&2; exit 3").stdout == "two\n"


def test_the_first_change_on_any_host_ends_every_snapshot(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one\n")
    predicted = Asked(reads=[str(tmp_path / "a")], facts=[f"cat {tmp_path}/a"])
    changed = threading.Event()
    this = SnapshotTarget(CountingLocalTarget(), predicted, changed)
    other = SnapshotTarget(CountingLocalTarget(), predicted, changed)
    this.warm()
    other.warm()
    (tmp_path / "a").write_text("two\n")
    assert this.fact(f"cat {tmp_path}/a").stdout == "one\n"  # as the run found it, nothing changed since
    other.write(str(tmp_path / "b"), b"x", 0o644)  # a change, on another host
    assert this.read_many([str(tmp_path / "a")])[str(tmp_path / "a")].content == b"two\n"  # type: ignore[union-attr]


def test_a_slow_fact_or_a_wait_is_asked_live_and_not_predicted(tmp_path: Path) -> None:
    t = SnapshotTarget(CountingLocalTarget(), None, threading.Event())
    t.fact("sleep 1.2")
    t.fact("true")
    t.fact("test -d /", now=True)  # a health loop that found its answer at once, this time
    assert t.asked.facts == ["true"]
    inner = CountingLocalTarget()
    again = SnapshotTarget(inner, Asked(facts=["test -d /"]), threading.Event())
    again.warm()
    again.fact("test -d /", now=True)
    assert again.served == 0 and inner.calls == 2
