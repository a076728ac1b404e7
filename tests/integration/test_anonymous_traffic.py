"""Strangers cannot grow the audit log forever: public endpoints are rate-limited and tallied.

Anonymous /verify (page and API), /tsa, failed password logins and unsigned federation calls
are counted per endpoint, client address and minute; over the limit a client gets 429 with
Retry-After (in its language on the HTML page); each finished tally period becomes one audit
entry per endpoint. Authenticated actions keep one audit entry each.
"""

from __future__ import annotations

import dataclasses
import subprocess
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from inkless.app import Node, build_node
from inkless.audit.tasks import tally_anonymous_traffic
from inkless.clock import FixedClock
from inkless.db import tables as t
from inkless.db.tables_traffic import anonymous_requests
from inkless.directory.demo import DemoSample
from inkless.federation.client import DIRECTORY_PATH
from inkless.seals.tsa import TIMESTAMP_QUERY
from inkless.web.app import create_app
from tests.helpers.seals import sample_pdf

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

LIMIT = 3
TALLY_SECONDS = 600


@pytest.fixture
def clock() -> FixedClock:
    # Early in a tally period, so that the requests of a test fall in one period and one minute.
    now = datetime.now(UTC).replace(microsecond=0)
    return FixedClock(now - timedelta(seconds=now.timestamp() % TALLY_SECONDS) + timedelta(seconds=1))


@pytest.fixture
def web_node(node: Node, demo: DemoSample, clock: FixedClock) -> Iterator[Node]:
    settings = dataclasses.replace(node.settings, public_requests_per_minute=LIMIT, audit_tally_seconds=TALLY_SECONDS)
    n = build_node(settings, clock)
    try:
        yield n
    finally:
        n.close()


def client(node: Node, address: str = "198.51.100.1") -> TestClient:
    return TestClient(create_app(node), client=(address, 40000))


def entries(node: Node, action: str) -> list[dict[str, Any]]:
    with node.db.begin() as conn:
        rows = conn.execute(select(t.audit_entries).where(t.audit_entries.c.action == action)
                            .order_by(t.audit_entries.c.idx)).all()
    return [dict(r._mapping) for r in rows]


def audit_size(node: Node) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(t.audit_entries)).scalar_one())


def tallies(node: Node, clock: FixedClock) -> dict[str, dict[str, Any]]:
    """Close the period and run the worker task; the tally entries by endpoint."""
    import json

    clock.advance(seconds=TALLY_SECONDS)
    tally_anonymous_traffic(node)
    found: dict[str, dict[str, Any]] = {}
    for entry in entries(node, "traffic.anonymous"):
        canonical = json.loads(entry["entry"])
        found[entry["object_id"]] = canonical["details"]
    return found


def test_anonymous_verification_is_rate_limited_and_tallied(web_node: Node, clock: FixedClock) -> None:
    stranger = client(web_node)
    pdf = sample_pdf()
    before = audit_size(web_node)
    for _ in range(LIMIT - 1):
        answer = stranger.post("/api/v1/verify", files={"file": ("a.pdf", pdf, "application/pdf")})
        assert answer.status_code == 200 and answer.json()["seals"] == []
    page = stranger.post("/verify", files={"file": ("a.pdf", pdf, "application/pdf")})
    assert page.status_code == 200
    refused = stranger.post("/api/v1/verify", files={"file": ("a.pdf", pdf, "application/pdf")})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 59
    assert refused.json()["detail"] == "Too many requests. Try again in a minute."
    html = stranger.post("/verify", files={"file": ("a.pdf", pdf, "application/pdf")})
    assert html.status_code == 429 and "リクエストが多すぎます。1分後にもう一度お試しください。" in html.text
    english = stranger.post("/verify?lang=en", files={"file": ("a.pdf", pdf, "application/pdf")})
    assert english.status_code == 429 and "Too many requests. Try again in a minute." in english.text
    # Another address is not affected.
    assert client(web_node, "198.51.100.2").post(
        "/api/v1/verify", files={"file": ("a.pdf", pdf, "application/pdf")}).status_code == 200
    # Nothing was audited per request; the period's tally is one entry.
    assert entries(web_node, "seal.verified") == []
    assert audit_size(web_node) == before
    clock.advance(seconds=60)  # the next minute: allowed again
    assert stranger.post("/api/v1/verify", files={"file": ("a.pdf", pdf, "application/pdf")}).status_code == 200
    found = tallies(web_node, clock)
    assert found["verify"]["outcomes"] == {"rate_limited": 3, "request": LIMIT + 2}
    assert found["verify"]["clients"] == 2 and found["verify"]["requests"] == LIMIT + 5
    assert audit_size(web_node) == before + 1
    with web_node.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(anonymous_requests)).scalar_one() == 0
    # The operator's own verification (CLI) is still one entry per document.
    assert web_node.sealing is not None
    web_node.sealing.verify(pdf, actor="cli")
    assert len(entries(web_node, "seal.verified")) == 1


def test_tsa_requests_are_rate_limited_and_tallied(web_node: Node, clock: FixedClock, tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_bytes(b"x")
    query = tmp_path / "q.tsq"
    subprocess.run(["openssl", "ts", "-query", "-data", str(data), "-sha256", "-out", str(query)], check=True)
    stranger = client(web_node)
    headers = {"Content-Type": TIMESTAMP_QUERY}
    answers = [stranger.post("/tsa", content=query.read_bytes(), headers=headers) for _ in range(LIMIT + 1)]
    assert [a.status_code for a in answers] == [200] * LIMIT + [429]
    assert answers[-1].headers["retry-after"] == "59"
    assert entries(web_node, "tsa.stamped") == []
    assert tallies(web_node, clock)["tsa"]["outcomes"] == {"rate_limited": 1, "request": LIMIT}


def test_failed_password_logins_are_tallied_not_audited_one_by_one(web_node: Node, clock: FixedClock) -> None:
    browser = client(web_node, "203.0.113.5")
    before = audit_size(web_node)
    for login in ("tanaka", "nobody", "sato", "yamada"):
        assert browser.post("/login", data={"login": login, "password": "guess-guess-guess"}).status_code == 401
    assert entries(web_node, "auth.login_failed") == []
    assert audit_size(web_node) == before
    found = tallies(web_node, clock)
    assert found["login"]["outcomes"] == {"password-failed": 4} and found["login"]["clients"] == 1


def test_unsigned_federation_calls_are_rate_limited_and_tallied(web_node: Node, clock: FixedClock) -> None:
    stranger = client(web_node, "203.0.113.6")
    answers = [stranger.get(DIRECTORY_PATH) for _ in range(LIMIT + 1)]
    assert [a.status_code for a in answers] == [401] * LIMIT + [429]
    assert answers[-1].headers["retry-after"] == "59" and "too many refused requests" in answers[-1].json()["detail"]
    forged = stranger.get(DIRECTORY_PATH, headers={"Signature-Input": 'sig1=();keyid="nowhere"'})
    assert forged.status_code == 429
    assert entries(web_node, "federation.request_refused") == []
    clock.advance(seconds=60)
    unknown = client(web_node, "203.0.113.7").get(
        DIRECTORY_PATH, headers={"Signature-Input": 'sig1=("@method");keyid="nowhere";alg="ecdsa-p256-sha256"',
                                 "Signature": "sig1=:AAAA:"})
    assert unknown.status_code == 401
    found = tallies(web_node, clock)
    assert found["federation"]["outcomes"] == {"rate_limited": 2, "unsigned": LIMIT, "not-pinned": 1}
    assert found["federation"]["clients"] == 2
    assert entries(web_node, "federation.request_refused") == []


def test_one_tally_entry_per_endpoint_and_period(web_node: Node, clock: FixedClock) -> None:
    for n in range(LIMIT * 3):
        client(web_node, f"192.0.2.{n}").post("/login", data={"login": "tanaka", "password": "guess-guess-guess"})
    first = tallies(web_node, clock)
    assert first["login"]["requests"] == LIMIT * 3 and first["login"]["clients"] == LIMIT * 3
    # A period without traffic adds nothing; the next period with traffic adds one entry more.
    assert tally_anonymous_traffic(web_node) == 0
    client(web_node).post("/login", data={"login": "tanaka", "password": "guess-guess-guess"})
    tallies(web_node, clock)
    assert len(entries(web_node, "traffic.anonymous")) == 2
