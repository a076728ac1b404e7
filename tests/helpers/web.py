"""Callers of the web app in tests: API tokens and logged-in browser sessions without the login dance."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from inkless.app import Node
from inkless.directory.tokens import ApiTokenService
from inkless.web.security import SessionStore, Stage

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the web tests)


@dataclass(frozen=True)
class BrowserLogin:
    """A fully logged-in browser session: its cookie value and CSRF token."""

    cookie: str
    csrf: str

    @property
    def cookies(self) -> dict[str, str]:
        return {"inkless_session": self.cookie}


def bearer(node: Node, login: str) -> dict[str, str]:
    """``Authorization`` header of a fresh API token of ``login``."""
    tokens = ApiTokenService(node.db, node.directory, node.audit, node.clock)
    secret = tokens.create(login, node.directory.user(login).office_code, "test").secret
    return {"Authorization": f"Bearer {secret}"}


def browser_login(node: Node, login: str, user_agent: str | None = None, client: str = "testclient") -> BrowserLogin:
    """An active session of ``login``, as the last login step would open it."""
    store = SessionStore(node.db, node.clock, node.settings.session_minutes)
    user_id = node.directory.user(login).id
    with node.db.begin() as conn:
        token, record = store.start(conn, user_id, Stage.ACTIVE, client, user_agent)
    return BrowserLogin(cookie=token, csrf=record.csrf_token)
