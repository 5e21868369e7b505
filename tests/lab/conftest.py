"""Fixtures for tests that boot real lab machines. Each lab has its own name and is always torn down."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bootstrap.lab.inventory import ensure_lab_bundle
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import running_lab, skip_reason, unique_name


@pytest.fixture(scope="session")
def lab_host() -> None:
    """Skip (with the reason) where labs cannot run: not root, or a missing package."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


LabFactory = Callable[..., LabState]


@pytest.fixture
def lab_factory(lab_host: None, tmp_path: Path) -> Iterator[LabFactory]:
    """lab_factory(control_planes=1, workers=0, **up_kwargs) -> LabState; every lab it made is torn
    down when the test ends, pass or fail."""
    with contextlib.ExitStack() as stack:

        def make(control_planes: int = 1, workers: int = 0, **kw: object) -> LabState:
            kw.setdefault("inventory_dir", str(tmp_path / "inventories"))
            return stack.enter_context(running_lab(unique_name(), control_planes, workers, **kw))

        yield make


@pytest.fixture(scope="module")
def module_lab_factory(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """Like lab_factory, for a lab shared by the tests of one module."""
    inv = tmp_path_factory.mktemp("inventories")
    with contextlib.ExitStack() as stack:

        def make(control_planes: int = 1, workers: int = 0, **kw: object) -> LabState:
            kw.setdefault("inventory_dir", str(inv))
            return stack.enter_context(running_lab(unique_name(), control_planes, workers, **kw))

        yield make


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The offline bundle lab inventories point at (kbootstrap_bundle), built once if missing."""
    return ensure_lab_bundle()
