"""The node builds each service once, on first use; assigning replaces it; a cycle is refused."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from inkless.app import Node, _Service

BUILT: list[str] = []


def _slow_clerk(node: Node) -> str:
    BUILT.append("clerk")
    time.sleep(0.05)  # a second reader arrives while the first one builds
    return f"clerk of {node.settings}"


class _Office(Node):
    clerk = _Service[str](_slow_clerk)
    seal = _Service[str](lambda node: f"seal for {node.clerk}")  # type: ignore[attr-defined]
    egg = _Service[str](lambda node: f"egg from {node.hen}")  # type: ignore[attr-defined]
    hen = _Service[str](lambda node: f"hen from {node.egg}")  # type: ignore[attr-defined]


def _office() -> Any:
    core: Any = object()
    return _Office(settings="民事局", db=core, blobs=core, clock=core, box=core, keystore=core, pki=core,
                   audit=core, directory=core)


def test_a_service_is_built_once_on_first_use_even_by_two_threads_at_once() -> None:
    BUILT.clear()
    office = _office()
    assert BUILT == [] and not _Office.clerk.built(office)
    seen: list[str] = []
    readers = [threading.Thread(target=lambda: seen.append(office.clerk)) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert BUILT == ["clerk"] and seen == ["clerk of 民事局"] * 2
    assert office.seal == "seal for clerk of 民事局" and BUILT == ["clerk"]  # built from the one clerk


def test_assigning_a_service_replaces_its_factory() -> None:
    BUILT.clear()
    office = _office()
    office.clerk = None  # this node has none
    assert office.clerk is None and BUILT == []
    office.clerk = "代理"
    assert office.seal == "seal for 代理"


def test_a_service_that_needs_itself_is_refused_with_its_path() -> None:
    office = _office()
    with pytest.raises(RuntimeError, match="egg → hen → egg"):
        _ = office.egg
    with pytest.raises(RuntimeError):  # nothing half-built was kept
        _ = office.hen
