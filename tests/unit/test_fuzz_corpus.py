"""Every input the fuzzers keep — seeds, and each crash once fixed — is replayed on every test run.

A parser facing the outside either accepts an input or refuses it with an inkless error; any other
exception is the crash the fuzzer found, back again (see fuzz/targets.py and docs/testing.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.targets import TARGETS, run

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
CASES = sorted(
    (name, path)
    for name in TARGETS
    for folder in (FUZZ / "corpus" / name, FUZZ / "crashes" / name)
    if folder.is_dir()
    for path in folder.iterdir()
    if path.is_file()
)


def test_every_target_has_a_seed_corpus() -> None:
    assert {name for name, _ in CASES} == set(TARGETS)


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{n}/{p.parent.name}/{p.name}" for n, p in CASES])
def test_kept_input_is_accepted_or_refused_cleanly(target: str, path: Path) -> None:
    run(target, path.read_bytes())
