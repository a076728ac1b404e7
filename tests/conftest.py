"""Fixtures shared by the three tiers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import rsa

from inkless.app import Node, build_node, init_node
from inkless.config import Settings, load_settings
from inkless.directory import service as directory_service
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, DemoSample, create_demo
from inkless.pki import ca as node_ca
from tests.helpers.db import fresh_database, postgres_url
from tests.helpers.nodes import refused_url
from tests.helpers.usual_ports import occupy_usual_ports

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", autouse=True)
def usual_ports_taken() -> Iterator[list[int]]:
    """Another program serves on the usual ports (8080, 5060 …) during the whole run.

    A test that reached a fixed port would now talk to that program and fail, as it would on a
    developer's machine running something there: tests must use free or refused ports only.
    """
    with occupy_usual_ports() as taken:
        yield taken


# Real keys and real hashes, made cheaper for the tests run in this process:
# - an RSA-3072 office key takes 0.2-0.5 s to generate; a test process keeps a pool of real
#   keys and hands them out in turn, so that any 64 keys generated one after another differ
#   (every office and node of one test has its own key) while a process makes at most 64;
# - Argon2id at the library's default cost takes 0.15 s per password; the tests hash with the
#   smallest cost. Verification reads the cost from each stored hash, so hashes written by a node
#   in another process (``inkless init`` in a subprocess) still verify.
# Neither is used by the nodes the tests start as separate processes: those run the product as is.
RSA_POOL_SIZE = 64
_rsa_generate = rsa.generate_private_key
_rsa_pool: list[rsa.RSAPrivateKey] = []
_rsa_handed_out = 0


def _pooled_rsa_key(public_exponent: int, key_size: int, backend: object = None) -> rsa.RSAPrivateKey:
    global _rsa_handed_out
    if public_exponent != 65537 or key_size != node_ca.RSA_BITS:
        return _rsa_generate(public_exponent, key_size)
    if len(_rsa_pool) < RSA_POOL_SIZE:
        _rsa_pool.append(_rsa_generate(public_exponent, key_size))
    key = _rsa_pool[_rsa_handed_out % len(_rsa_pool)]
    _rsa_handed_out += 1
    return key


def _quick_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def quick_keys_and_hashes() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rsa, "generate_private_key", _pooled_rsa_key)
        patch.setattr(directory_service, "PasswordHasher", _quick_hasher)
        yield


def _weight(item: pytest.Item) -> int:
    """The rest of e2e, then integration, then unit (the lowest runs first)."""
    tier = item.nodeid.split("/")[1] if item.nodeid.startswith("tests/") else ""
    return {"e2e": 1, "integration": 2}.get(tier, 3)


_yielding = False


@pytest.fixture(autouse=True)
def yield_cpu_to_real_time_tests(request: pytest.FixtureRequest) -> None:
    """A test process that reaches its first test not marked ``realtime`` lowers its own priority (nice 10,
    inherited by the servers, browsers and OCR it starts), for good.

    The real-time files are handed out first (``pytest_collection_modifyitems`` below), so a process never
    gets a real-time file after any other; while the real-time fax calls (G.711 audio paced at 20 ms) still
    run in other processes, they get the CPU before PDF rendering, OCR, large uploads and browsers — the
    other slow files included. Starved of it, a call fails its modem training and is retried, and the
    receiver keeps two faxes.
    """
    global _yielding
    if _yielding or "realtime" in request.keywords:
        return
    _yielding = True
    with contextlib.suppress(OSError):
        os.nice(10)


def _group(item: pytest.Item, realtime: set[str], slow: set[str]) -> int:
    module = item.nodeid.split("::")[0]
    if module in realtime:
        return 0
    if module in slow:
        return 1
    return 1 + _weight(item)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # After pytest-randomly has shuffled: a stable sort keeps the random order within each group, and the
    # parallel run (one module per worker at a time) starts the real-time modules first, then the other
    # long ones, instead of finding one of them last with the other workers idle.
    realtime = {item.nodeid.split("::")[0] for item in items if "realtime" in item.keywords}
    slow = {item.nodeid.split("::")[0] for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: _group(item, realtime, slow))
    if postgres_url():
        return
    skip = pytest.mark.skip(reason="set INKLESS_TEST_POSTGRES_URL to run the PostgreSQL tests")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path / "node") as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        tmp_path / "node",
        env={},
        overrides={
            "node_id": DEMO_NODE_ID,
            "organisation": DEMO_ORGANISATION,
            "database_url": database_url,
            "base_url": refused_url(),
        },
    )


@pytest.fixture
def node(settings: Settings) -> Iterator[Node]:
    """A freshly initialised node (CA, node and TSA keys; no offices yet)."""
    n = init_node(settings)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def demo(node: Node) -> DemoSample:
    """The demo offices and users, created in ``node``."""
    return create_demo(node.directory)


def reopen(node: Node) -> Node:
    """A second Node on the same data, as another process would build it."""
    return build_node(node.settings)
