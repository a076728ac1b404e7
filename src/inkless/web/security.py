"""Browser sessions, CSRF tokens and login rate limiting.

The decisions (is a session expired, is a CSRF token right, how long must a
client wait) are pure functions, tested with fakes; the services around them
keep their state in ``web_sessions`` and ``login_attempts``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.errors import RateLimitedError

# A session that is not used for this long ends, however long its absolute lifetime.
IDLE_MINUTES = 60
# The steps between password and a full session must be finished quickly.
PENDING_MINUTES = 10
# Touching last_seen_at on every request would turn every page view into a write.
TOUCH_GRANULARITY = timedelta(seconds=60)
# How long a (login, address) pair's failures are remembered: longer than the longest delay,
# so that the delay keeps growing for someone who waits out each one and guesses again.
PAIR_MEMORY = timedelta(hours=24)


class Stage(StrEnum):
    """How far a browser session has come through the login."""

    TOTP = "totp"  # password accepted, waiting for the one-time code
    ENROL = "enrol"  # password accepted, TOTP never confirmed: show the QR code
    PASSWORD = "password"  # noqa: S105 - must choose a new password before anything else
    ACTIVE = "active"  # logged in


def hash_session_token(token: str) -> str:
    """SHA-256 hex of a cookie value: the session id stored in the database."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_matches(expected: str, submitted: str | None) -> bool:
    """True only when a CSRF token was submitted and equals the session's (constant-time)."""
    if not submitted or not expected:
        return False
    return secrets.compare_digest(expected.encode("utf-8"), submitted.encode("utf-8"))


def session_expiry(created_at: datetime, now: datetime, stage: Stage, session_minutes: int) -> datetime:
    """When a session used at ``now`` expires: idle timeout, capped by the absolute lifetime."""
    absolute = created_at + timedelta(minutes=session_minutes)
    idle = PENDING_MINUTES if stage != Stage.ACTIVE else min(IDLE_MINUTES, session_minutes)
    return min(absolute, now + timedelta(minutes=idle))


def retry_after(
    failures: Sequence[datetime], now: datetime, max_failures: int, window_seconds: int
) -> int | None:
    """Seconds until another attempt is allowed, or None if allowed now.

    ``failures`` are the times of recent failed attempts. The client is blocked
    while ``max_failures`` or more of them lie within the window; the block lifts
    when enough of them have aged out to leave fewer than ``max_failures``.
    """
    window = timedelta(seconds=window_seconds)
    recent = sorted(at for at in failures if at > now - window)
    if len(recent) < max_failures:
        return None
    # The failure whose ageing-out brings the count below the limit.
    pivot = recent[len(recent) - max_failures]
    wait = (pivot + window - now).total_seconds()
    return max(1, int(wait + 0.999))


def backoff_wait(
    failures: Sequence[datetime], now: datetime, free_failures: int, base_seconds: int, cap_seconds: int
) -> int | None:
    """Seconds a (login, address) pair must wait after its failures, or None if it may try now.

    The first ``free_failures`` failures cost nothing (typos happen); each one after that
    doubles the delay counted from the last failure: ``base``, ``2·base``, ``4·base`` …, at
    most ``cap_seconds``.
    """
    excess = len(failures) - free_failures
    if excess < 0:
        return None
    delay = min(cap_seconds, base_seconds * 2 ** min(excess, 30))
    wait = (max(failures) + timedelta(seconds=delay) - now).total_seconds()
    if wait <= 0:
        return None
    return max(1, int(wait + 0.999))


@dataclass(frozen=True)
class WebSession:
    """A browser session as stored (the id is the hash of the cookie, never the cookie itself)."""

    id: str
    user_id: int
    stage: Stage
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def session_ref(session_id: str) -> str:
    """A public name for a session (sessions page, API): derived from the stored id, useless as a cookie."""
    return hashlib.sha256(b"inkless-session-ref:" + session_id.encode("ascii")).hexdigest()[:16]


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's sessions as listed to them."""

    ref: str
    client: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime


class SessionStore:
    """Server-side browser sessions in ``web_sessions``."""

    def __init__(self, db: Database, clock: Clock, session_minutes: int) -> None:
        self._db = db
        self._clock = clock
        self._minutes = session_minutes

    def start(
        self, conn: Connection, user_id: int, stage: Stage, client: str | None, user_agent: str | None = None
    ) -> tuple[str, WebSession]:
        """Open a session; returns the cookie value (shown to the browser only) and the stored record."""
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        record = WebSession(
            id=hash_session_token(token),
            user_id=user_id,
            stage=stage,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=session_expiry(now, now, stage, self._minutes),
        )
        conn.execute(
            insert(t.web_sessions).values(
                id=record.id,
                user_id=user_id,
                stage=stage.value,
                csrf_token=record.csrf_token,
                created_at=now,
                last_seen_at=now,
                expires_at=record.expires_at,
                client=(client or "")[:64],
                user_agent=(user_agent or "")[:200] or None,
            )
        )
        return token, record

    def load(self, token: str | None, *, touch: bool = True) -> WebSession | None:
        """The live session for a cookie value, or None; an expired session is deleted on sight.

        ``touch=False`` reads it without extending its idle time (background polling by a page).
        """
        if not token or len(token) > 200:
            return None
        now = self._clock.now()
        sid = hash_session_token(token)
        with self._db.begin() as conn:
            row = conn.execute(select(t.web_sessions).where(t.web_sessions.c.id == sid)).one_or_none()
            if row is None:
                return None
            if row.expires_at <= now:
                conn.execute(delete(t.web_sessions).where(t.web_sessions.c.id == sid))
                return None
            session = _session(row)
            if touch and now - session.last_seen_at >= TOUCH_GRANULARITY:
                expires = session_expiry(session.created_at, now, session.stage, self._minutes)
                conn.execute(
                    update(t.web_sessions)
                    .where(t.web_sessions.c.id == sid)
                    .values(last_seen_at=now, expires_at=expires)
                )
                session = WebSession(**{**session.__dict__, "last_seen_at": now, "expires_at": expires})
            return session

    def advance(
        self, conn: Connection, session: WebSession, stage: Stage, client: str | None, user_agent: str | None = None
    ) -> tuple[str, WebSession]:
        """Move a session to its next stage under a new cookie value (the old one stops working)."""
        if user_agent is None:
            # The browser stays the same through the login steps.
            user_agent = conn.execute(
                select(t.web_sessions.c.user_agent).where(t.web_sessions.c.id == session.id)
            ).scalar()
        # A fresh token at every privilege change: a cookie seen before login is worthless after it.
        conn.execute(delete(t.web_sessions).where(t.web_sessions.c.id == session.id))
        token, fresh = self.start(conn, session.user_id, stage, client, user_agent)
        if stage == Stage.ACTIVE:
            return token, fresh
        # Pending stages keep the original deadline, so the login cannot be stretched step by step.
        conn.execute(
            update(t.web_sessions)
            .where(t.web_sessions.c.id == fresh.id)
            .values(created_at=session.created_at, expires_at=min(fresh.expires_at, session.expires_at))
        )
        return token, WebSession(
            **{
                **fresh.__dict__,
                "created_at": session.created_at,
                "expires_at": min(fresh.expires_at, session.expires_at),
            }
        )

    def end(self, conn: Connection, session_id: str) -> None:
        """Delete a session (logout)."""
        conn.execute(delete(t.web_sessions).where(t.web_sessions.c.id == session_id))

    def of_user(self, conn: Connection, user_id: int) -> list[SessionInfo]:
        """The user's live, fully logged-in sessions, most recently used first."""
        rows = conn.execute(
            select(t.web_sessions)
            .where(
                t.web_sessions.c.user_id == user_id,
                t.web_sessions.c.stage == Stage.ACTIVE.value,
                t.web_sessions.c.expires_at > self._clock.now(),
            )
            .order_by(t.web_sessions.c.last_seen_at.desc())
        ).all()
        return [
            SessionInfo(
                ref=session_ref(row.id), client=row.client or "", user_agent=row.user_agent or "",
                created_at=row.created_at, last_seen_at=row.last_seen_at,
            )
            for row in rows
        ]

    def end_of_user(self, conn: Connection, user_id: int, ref: str | None = None, keep: str | None = None) -> int:
        """End the user's session named ``ref`` (or all of them but ``keep``); returns how many ended.

        Only the user's own sessions can be named: a reference of someone else's ends nothing.
        """
        rows = conn.execute(select(t.web_sessions.c.id).where(t.web_sessions.c.user_id == user_id)).all()
        doomed = [r.id for r in rows if (ref is None or session_ref(r.id) == ref) and r.id != keep]
        if doomed:
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.id.in_(doomed)))
        return len(doomed)

    def purge_expired(self, conn: Connection) -> int:
        """Delete expired sessions; returns how many."""
        result = conn.execute(delete(t.web_sessions).where(t.web_sessions.c.expires_at <= self._clock.now()))
        return int(result.rowcount or 0)


# The first key of the PostgreSQL advisory locks that make one address's login checks take turns ("logn").
LOGIN_ADVISORY_SPACE = 0x6C6F676E


class LoginThrottle:
    """Failed logins in ``login_attempts``: a growing delay per (login, address) pair, a cap per address.

    Nothing is counted per login name alone, so strangers elsewhere cannot lock an account
    (the administrator's, say) by failing at it: the right password and code from an address
    that has not failed get through. Nothing is counted per address alone below a loose limit,
    so one clerk's typos do not lock an office behind a shared (NAT) address; the limit stops
    an address that sprays guesses over many logins. The state is in the database, so every
    web process of a node agrees.
    """

    def __init__(
        self,
        clock: Clock,
        max_failures: int,
        window_seconds: int,
        backoff_seconds: int = 30,
        address_max_failures: int = 30,
    ) -> None:
        self._clock = clock
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.backoff_seconds = backoff_seconds
        self.address_max_failures = address_max_failures

    def reserve(self, conn: Connection, login: str, client: str) -> int | None:
        """Check, and count this attempt as failed at once (the row id, None without a login name).

        Attempts that arrive together must not all pass the check while the first password is still
        being hashed: each one counts before its secret is looked at, and :meth:`settle` forgives it
        when the secret was right. On PostgreSQL one address's checks take turns (on SQLite the
        write transaction already does this)."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                         {"space": LOGIN_ADVISORY_SPACE, "key": client[:64]})
        self._check(conn, login, client)
        if not login:
            return None
        row = conn.execute(
            insert(t.login_attempts)
            .values(login=login[:64], client=client[:64], at=self._clock.now(), success=False)
            .returning(t.login_attempts.c.id)
        ).scalar_one()
        return int(row)

    def settle(self, conn: Connection, attempt: int | None, success: bool) -> None:
        """The reserved attempt's outcome: a right secret is not held against the pair or the address."""
        if attempt is not None and success:
            conn.execute(delete(t.login_attempts).where(t.login_attempts.c.id == attempt))

    def _check(self, conn: Connection, login: str, client: str) -> None:
        """Raise RateLimitedError if this login from this client, or this client at all, must wait."""
        now = self._clock.now()
        since = now - timedelta(seconds=self.window_seconds)
        waits: list[int] = []
        if login:
            pair = (t.login_attempts.c.login == login[:64], t.login_attempts.c.client == client[:64])
            # A pair's failures count only after its last success: the user who got it right starts afresh.
            last_ok = conn.execute(
                select(func.max(t.login_attempts.c.at)).where(*pair, t.login_attempts.c.success.is_(True))
            ).scalar()
            remembered = now - max(PAIR_MEMORY, timedelta(seconds=self.window_seconds))
            pair_since = max(remembered, last_ok) if last_ok is not None else remembered
            wait = backoff_wait(
                self._failures(conn, pair, pair_since), now, self.max_failures, self.backoff_seconds,
                self.window_seconds,
            )
            if wait is not None:
                waits.append(wait)
        # An address's failures always count, successes or not: one good account must not
        # launder guesses at others.
        by_client = self._failures(conn, (t.login_attempts.c.client == client[:64],), since)
        wait = retry_after(by_client, now, self.address_max_failures, self.window_seconds)
        if wait is not None:
            waits.append(wait)
        if waits:
            longest = max(waits)
            raise RateLimitedError(
                f"too many failed attempts; try again in {longest} seconds", retry_after=longest
            )

    def prune(self, conn: Connection) -> None:
        """Forget attempts that no longer decide anything."""
        since = self._clock.now() - max(PAIR_MEMORY, timedelta(seconds=self.window_seconds))
        conn.execute(delete(t.login_attempts).where(t.login_attempts.c.at < since))

    def record(self, conn: Connection, login: str, client: str, success: bool) -> None:
        """Remember one attempt; an attempt without a login name is not worth a row (it cannot succeed)."""
        if not login:
            return
        conn.execute(
            insert(t.login_attempts).values(
                login=login[:64], client=client[:64], at=self._clock.now(), success=success
            )
        )

    def _failures(self, conn: Connection, conditions: tuple[Any, ...], since: datetime) -> list[datetime]:
        rows = conn.execute(
            select(t.login_attempts.c.at).where(
                *conditions, t.login_attempts.c.success.is_(False), t.login_attempts.c.at > since
            )
        ).all()
        return [r.at for r in rows]


def _session(row: Any) -> WebSession:
    return WebSession(
        id=row.id,
        user_id=row.user_id,
        stage=Stage(row.stage),
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
    )
