"""/api/v1, /healthz and the node's PKI files, as a program or a verifier uses them."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from cryptography import x509
from sqlalchemy import select

from inkless.app import Node, build_node
from inkless.clock import FixedClock
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from inkless.directory.tokens import ApiTokenService, hash_token
from inkless.errors import PolicyError, ValidationError
from inkless.web.app import create_app

with warnings.catch_warnings():
    # Starlette warns that its test client prefers the httpx2 package; httpx is what we have.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

PASSWORD = "kawa-no-nagare-2026"


@pytest.fixture
def clock() -> FixedClock:
    now = datetime.now(UTC).replace(microsecond=0)
    return FixedClock(now - timedelta(seconds=now.timestamp() % 30) + timedelta(seconds=10))


@pytest.fixture
def web_node(node: Node, demo: DemoSample, clock: FixedClock) -> Iterator[Node]:
    n = build_node(dataclasses.replace(node.settings), clock)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def app_client(web_node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(web_node)) as c:
        yield c


@pytest.fixture
def tokens(web_node: Node, clock: FixedClock) -> ApiTokenService:
    return ApiTokenService(web_node.db, web_node.directory, web_node.audit, clock)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def browser_login(client: TestClient, node: Node, clock: FixedClock, login: str) -> str:
    """Log ``login`` in through the pages; returns the session's CSRF token."""
    node.directory.verify_totp(
        login, pyotp.TOTP(node.directory.totp_secret(login)).at(clock.now() - timedelta(seconds=30))
    )
    node.directory.set_password(login, PASSWORD, actor="test")
    page = client.post("/login", data={"login": login, "password": PASSWORD})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    code = pyotp.TOTP(node.directory.totp_secret(login)).at(clock.now())
    inbox = client.post("/login/totp", data={"code": code, "csrf_token": csrf.group(1)})
    assert inbox.status_code == 200
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', inbox.text)
    assert fresh
    return fresh.group(1)


def test_healthz(app_client: TestClient, backend: str) -> None:
    health = app_client.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["node_id"] == "moj" and body["database"] == backend
    assert re.match(r"^\d+\.\d+\.\d+", body["version"])


def test_crl_verifies_against_the_ca_with_openssl(app_client: TestClient, tmp_path: Path) -> None:
    pem = app_client.get("/pki/ca.pem")
    assert pem.status_code == 200 and pem.content.startswith(b"-----BEGIN CERTIFICATE-----")
    crl = app_client.get("/pki/crl")
    assert crl.status_code == 200 and crl.headers["content-type"] == "application/pkix-crl"
    (tmp_path / "ca.pem").write_bytes(pem.content)
    (tmp_path / "crl.der").write_bytes(crl.content)
    result = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "crl.der"),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-noout",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr
    ca = x509.load_pem_x509_certificate(pem.content)
    assert x509.load_der_x509_crl(crl.content).issuer == ca.subject


def test_crl_url_in_certificates_is_served(app_client: TestClient, web_node: Node) -> None:
    with web_node.db.begin() as conn:
        der = conn.execute(
            select(t.certificates.c.der).where(t.certificates.c.purpose == "office-signing")
        ).scalar()
    assert der is not None
    points = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.CRLDistributionPoints
    )
    url = points.value[0].full_name[0].value
    assert url == web_node.settings.base_url + "/pki/crl"
    assert app_client.get(url.removeprefix(web_node.settings.base_url)).status_code == 200


def test_openapi_document_lists_the_routes(app_client: TestClient) -> None:
    spec = app_client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/api/v1/me",
        "/api/v1/offices",
        "/api/v1/offices/{code}/inbox",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
    ):
        assert path in paths
    assert {"get", "post"} <= set(paths["/api/v1/tokens"])
    assert "delete" in paths["/api/v1/tokens/{token_id}"]
    assert not any(p.startswith("/login") for p in paths)
    # No CDN-loaded Swagger UI: the node works offline with a strict CSP.
    assert app_client.get("/api/v1/docs").status_code == 404


def test_security_headers(app_client: TestClient) -> None:
    page = app_client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"
    # Nothing inline for the CSP to refuse: no script without a same-origin src, no style attribute; the login
    # page itself needs no script at all.
    assert "<script" not in page.text and "style=" not in page.text
    assert app_client.get("/static/style.css").status_code == 200


def test_api_requires_credentials(app_client: TestClient) -> None:
    for path in ("/api/v1/me", "/api/v1/offices", "/api/v1/offices/civil-affairs/inbox", "/api/v1/tokens"):
        response = app_client.get(path)
        assert response.status_code == 401, path
        assert response.json()["detail"]
    assert app_client.get("/api/v1/me", headers=bearer("ink_not-a-real-token")).status_code == 401
    assert app_client.get("/api/v1/me", headers={"Authorization": "Basic dGFuYWthOng="}).status_code == 401


def test_token_sees_its_office_only(app_client: TestClient, tokens: ApiTokenService) -> None:
    created = tokens.create("tanaka", "civil-affairs", "scanner", 30)
    assert created.secret.startswith("ink_")
    me = app_client.get("/api/v1/me", headers=bearer(created.secret))
    assert me.status_code == 200
    assert me.json()["login"] == "tanaka" and me.json()["office"]["address"] == "civil-affairs@moj"
    assert me.json()["auth"] == "token"
    inbox = app_client.get("/api/v1/offices/civil-affairs/inbox", headers=bearer(created.secret))
    assert inbox.status_code == 200 and inbox.json() == {"office": "civil-affairs@moj", "messages": []}
    other = app_client.get("/api/v1/offices/criminal-affairs/inbox", headers=bearer(created.secret))
    assert other.status_code == 403
    offices = app_client.get("/api/v1/offices", headers=bearer(created.secret)).json()
    assert [o["code"] for o in offices] == ["civil-affairs", "criminal-affairs", "secretariat"]
    assert tokens.get(created.token.id).last_used_at is not None


def test_token_is_stored_as_a_hash_only(web_node: Node, tokens: ApiTokenService) -> None:
    created = tokens.create("tanaka", "civil-affairs", "scanner")
    with web_node.db.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(t.api_tokens)).all()]
    assert rows[0]["token_hash"] == hash_token(created.secret)
    assert all(created.secret not in str(v) for row in rows for v in row.values())


def test_token_scope_is_the_users_own_office(web_node: Node, tokens: ApiTokenService) -> None:
    with pytest.raises(PolicyError):
        tokens.create("tanaka", "criminal-affairs", "sneaky")
    # Admins too: they administer the node, they do not read other offices' mail.
    with pytest.raises(PolicyError):
        tokens.create("yamada", "civil-affairs", "sneaky")
    with pytest.raises(ValidationError):
        tokens.create("tanaka", "civil-affairs", "x", expires_days=0)
    assert tokens.list() == []


def test_revoked_and_expired_tokens_are_refused(
    app_client: TestClient, tokens: ApiTokenService, clock: FixedClock
) -> None:
    short = tokens.create("tanaka", "civil-affairs", "short", expires_days=1)
    revoked = tokens.create("tanaka", "civil-affairs", "revoked")
    assert app_client.get("/api/v1/me", headers=bearer(revoked.secret)).status_code == 200
    gone = app_client.delete(f"/api/v1/tokens/{revoked.token.id}", headers=bearer(revoked.secret))
    assert gone.status_code == 200 and gone.json()["state"] == "revoked"
    assert app_client.get("/api/v1/me", headers=bearer(revoked.secret)).status_code == 401
    assert app_client.get("/api/v1/me", headers=bearer(short.secret)).status_code == 200
    clock.advance(days=1, seconds=1)
    expired = app_client.get("/api/v1/me", headers=bearer(short.secret))
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"] == "Bearer"


def test_session_api_checks_office_and_csrf(
    app_client: TestClient, web_node: Node, clock: FixedClock, tokens: ApiTokenService
) -> None:
    csrf = browser_login(app_client, web_node, clock, "tanaka")
    assert app_client.get("/api/v1/me").json()["auth"] == "session"
    assert app_client.get("/api/v1/offices/civil-affairs/inbox").status_code == 200
    assert app_client.get("/api/v1/offices/criminal-affairs/inbox").status_code == 403

    # A state change with the session cookie alone is refused.
    assert app_client.post("/api/v1/tokens", json={"name": "ci"}).status_code == 403
    assert (
        app_client.post("/api/v1/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": "x"}).status_code
        == 403
    )
    assert tokens.list() == []
    created = app_client.post(
        "/api/v1/tokens", json={"name": "ci", "expires_days": 7}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201
    body = created.json()
    assert (
        body["token"].startswith("ink_") and body["office"] == "civil-affairs" and body["state"] == "active"
    )
    listed = app_client.get("/api/v1/tokens").json()
    assert [x["name"] for x in listed] == ["ci"] and "token" not in listed[0]
    assert app_client.delete(f"/api/v1/tokens/{body['id']}").status_code == 403
    assert (
        app_client.delete(f"/api/v1/tokens/{body['id']}", headers={"X-CSRF-Token": csrf}).status_code == 200
    )
    assert app_client.get("/api/v1/me", headers=bearer(body["token"])).status_code == 401


def test_tokens_cannot_mint_tokens_or_touch_others(app_client: TestClient, tokens: ApiTokenService) -> None:
    mine = tokens.create("tanaka", "civil-affairs", "mine")
    theirs = tokens.create("takahashi", "criminal-affairs", "theirs")
    assert (
        app_client.post("/api/v1/tokens", json={"name": "child"}, headers=bearer(mine.secret)).status_code
        == 403
    )
    assert (
        app_client.delete(f"/api/v1/tokens/{theirs.token.id}", headers=bearer(mine.secret)).status_code == 404
    )
    assert tokens.get(theirs.token.id).revoked_at is None
    # A token is refused for what it is, before its (here invalid) body is even looked at.
    bad = app_client.post("/api/v1/tokens", json={"name": ""}, headers=bearer(mine.secret))
    assert bad.status_code == 403 and bad.json()["detail"] == "API tokens are created from a browser session or the CLI"


def test_api_token_create_validates_input(
    app_client: TestClient, web_node: Node, clock: FixedClock, tokens: ApiTokenService
) -> None:
    csrf = browser_login(app_client, web_node, clock, "tanaka")
    for body in ({"name": ""}, {"name": "x", "expires_days": 0}, {"nom": "x"}):
        refused = app_client.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 422
    first = app_client.post("/api/v1/tokens", json={"name": "dup"}, headers={"X-CSRF-Token": csrf})
    again = app_client.post("/api/v1/tokens", json={"name": "dup"}, headers={"X-CSRF-Token": csrf})
    assert first.status_code == 201 and again.status_code == 409
    assert "dup" in again.json()["detail"]
    assert [x.name for x in tokens.list()] == ["dup"]


def test_admin_routes_need_an_admin(app_client: TestClient, tokens: ApiTokenService) -> None:
    clerk = tokens.create("tanaka", "civil-affairs", "clerk")
    admin = tokens.create("yamada", "secretariat", "admin")
    path = "/api/v1/audit/entries"
    assert app_client.get(path).status_code == 401
    assert app_client.get(path, headers=bearer(clerk.secret)).status_code == 403
    assert app_client.get(path, headers=bearer(admin.secret)).status_code == 200
