"""API tokens: bearer credentials for automation, each scoped to one office.

A token is ``ink_`` followed by 32 random bytes (URL-safe base64). It is shown
once when created; the database keeps only its SHA-256, so a copy of the
database does not yield working tokens. A token may only be scoped to the
office of the user who owns it: an administrator administers the node but does
not read other offices' mail, and neither do their tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.directory.model import Office, User
from inkless.directory.service import DirectoryService
from inkless.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PolicyError,
    ValidationError,
)
from inkless.text import check_text

TOKEN_PREFIX = "ink_"  # noqa: S105 - a prefix that makes leaked tokens recognisable, not a secret
MAX_EXPIRES_DAYS = 3650
# Writing last_used_at on every request would turn every API read into a write; once a minute is enough.
LAST_USED_GRANULARITY = timedelta(seconds=60)
METRICS_SCOPE = "metrics"
SCOPES = (None, METRICS_SCOPE)


def hash_token(secret: str) -> str:
    """SHA-256 hex of a token: what the database stores and looks up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token_secret() -> str:
    """A fresh plaintext token: ``ink_`` + 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiToken:
    """A stored API token (never its secret)."""

    id: int
    user_login: str
    office_code: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    scope: str | None = None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class NewApiToken:
    """A token just created, with the plaintext secret that is shown this one time."""

    token: ApiToken
    secret: str


def check_token_name(name: str) -> str:
    name = check_text(name, "token name").strip()
    if not name or len(name) > 100:
        raise ValidationError("token name must be 1-100 characters")
    return name


def check_expires_days(days: int | None) -> int | None:
    if days is None:
        return None
    if not 1 <= days <= MAX_EXPIRES_DAYS:
        raise ValidationError("expiry must be 1-{max_expires_days} days", max_expires_days=MAX_EXPIRES_DAYS)
    return days


class ApiTokenService:
    """Creates, authenticates, lists and revokes API tokens."""

    def __init__(self, db: Database, directory: DirectoryService, audit: AuditRecorder, clock: Clock) -> None:
        self._db = db
        self._directory = directory
        self._audit = audit
        self._clock = clock

    def create(
        self,
        login: str,
        office_code: str,
        name: str,
        expires_days: int | None = None,
        actor: str | None = None,
        scope: str | None = None,
    ) -> NewApiToken:
        """Create a token for ``login`` scoped to ``office_code`` (which must be the user's own office).

        ``scope="metrics"`` makes a token that reads only ``/metrics`` on the main port (an
        administrator's, for a Prometheus server); it opens no office API.
        """
        name = check_token_name(name)
        if scope not in SCOPES:
            raise ValidationError(f"scope must be one of: {', '.join(s for s in SCOPES if s)}")
        expires_days = check_expires_days(expires_days)
        now = self._clock.now()
        secret = new_token_secret()
        with self._db.begin() as conn:
            user = self._directory.user(login, conn)
            office = self._directory.office(office_code, conn)
            if office.id != user.office_id:
                raise PolicyError(
                    f"a token of {login!r} can only be scoped to their own office {user.office_code!r}"
                )
            if not user.active:
                raise PolicyError("user {login!r} is not active", login=login)
            if scope == METRICS_SCOPE and user.role.value != "admin":
                raise PolicyError("only administrators may create a metrics token")
            duplicate = conn.execute(
                select(t.api_tokens.c.id).where(
                    t.api_tokens.c.user_id == user.id, t.api_tokens.c.name == name
                )
            ).first()
            if duplicate:
                raise ConflictError("{login!r} already has a token named {name!r}", login=login, name=name)
            expires_at = now + timedelta(days=expires_days) if expires_days else None
            try:
                token_id = conn.execute(
                    insert(t.api_tokens).values(
                        user_id=user.id,
                        office_id=office.id,
                        name=name,
                        token_hash=hash_token(secret),
                        created_at=now,
                        expires_at=expires_at,
                        scope=scope,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            except SAIntegrityError:
                # Two requests creating the same name at once: the unique constraint decides.
                raise ConflictError("{login!r} already has a token named {name!r}", login=login, name=name) from None
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor or login,
                    action="api_token.created",
                    object_type="api_token",
                    object_id=str(token_id),
                    details={
                        "user": login,
                        "office": office.code,
                        "name": name,
                        "expires_days": expires_days,
                        "scope": scope,
                    },
                ),
                at=now,
            )
            token = self._get(conn, token_id)
        return NewApiToken(token=token, secret=secret)

    def authenticate(self, secret: str, scope: str | None = None) -> tuple[User, Office]:
        """The user and office a token stands for; AuthenticationError if unknown, expired or revoked.

        A token opens only what its scope names: the office API (``scope=None``) or ``/metrics``.
        """
        failure = AuthenticationError("invalid, expired or revoked API token")
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            raise failure
        now = self._clock.now()
        with self._db.begin() as conn:
            row = conn.execute(
                select(t.api_tokens).where(t.api_tokens.c.token_hash == hash_token(secret))
            ).one_or_none()
            if row is None or row.revoked_at is not None or row.scope != scope:
                raise failure
            if row.expires_at is not None and row.expires_at <= now:
                raise failure
            user = self._directory.user_by_id(row.user_id, conn)
            # A user moved to another office loses the tokens of the old one.
            if not user.active or user.locked or user.office_id != row.office_id:
                raise failure
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY:
                conn.execute(update(t.api_tokens).where(t.api_tokens.c.id == row.id).values(last_used_at=now))
            office = self._directory.office(user.office_code, conn)
        return user, office

    def list(self, login: str | None = None) -> list[ApiToken]:
        """Every token (of ``login`` if given), newest first."""
        query = _token_query().order_by(t.api_tokens.c.created_at.desc(), t.api_tokens.c.id.desc())
        if login is not None:
            query = query.where(t.users.c.login == login)
        with self._db.read() as conn:
            return [_token(r) for r in conn.execute(query).all()]

    def get(self, token_id: int) -> ApiToken:
        with self._db.read() as conn:
            return self._get(conn, token_id)

    def revoke(self, token_id: int, actor: str, owner: str | None = None) -> ApiToken:
        """Revoke a token; with ``owner`` set, only a token of that user (others look like missing ones)."""
        now = self._clock.now()
        with self._db.begin() as conn:
            token = self._get(conn, token_id)
            if owner is not None and token.user_login != owner:
                raise NotFoundError("no API token {token_id}", token_id=token_id)
            if token.revoked_at is not None:
                raise ConflictError("API token {token_id} is already revoked", token_id=token_id)
            conn.execute(update(t.api_tokens).where(t.api_tokens.c.id == token_id).values(revoked_at=now))
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="api_token.revoked",
                    object_type="api_token",
                    object_id=str(token_id),
                    details={"user": token.user_login, "office": token.office_code, "name": token.name},
                ),
                at=now,
            )
            return self._get(conn, token_id)

    def _get(self, conn: Any, token_id: int) -> ApiToken:
        row = conn.execute(_token_query().where(t.api_tokens.c.id == token_id)).one_or_none()
        if row is None:
            raise NotFoundError("no API token {token_id}", token_id=token_id)
        return _token(row)


def _token_query() -> Any:
    return (
        select(
            t.api_tokens.c.id,
            t.users.c.login.label("user_login"),
            t.offices.c.code.label("office_code"),
            t.api_tokens.c.name,
            t.api_tokens.c.created_at,
            t.api_tokens.c.expires_at,
            t.api_tokens.c.last_used_at,
            t.api_tokens.c.revoked_at,
            t.api_tokens.c.scope,
        )
        .join(t.users, t.users.c.id == t.api_tokens.c.user_id)
        .join(t.offices, t.offices.c.id == t.api_tokens.c.office_id)
    )


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        id=row.id,
        user_login=row.user_login,
        office_code=row.office_code,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        scope=row.scope,
    )
