"""Offices and users: creation, listing, passwords and TOTP."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, insert, or_, select, update

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.directory.model import (
    NewAccount,
    Office,
    Role,
    User,
    check_clearance,
    check_fax_number,
    check_login,
    check_name,
    check_office_code,
    check_role,
)
from inkless.directory.passwords import check_password_strength
from inkless.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from inkless.pki.keystore import SecretBox
from inkless.pki.model import CertificateIssuer

if TYPE_CHECKING:
    from argon2 import PasswordHasher as Argon2PasswordHasher

TOTP_ISSUER = "inkless"
# A TOTP code is accepted one step (30 s) either side of now, to forgive clock drift.
TOTP_WINDOW = 1


def _totp_context(login: str) -> str:
    return f"inkless/totp/{login}"


class DirectoryService:
    """Creates and finds offices and users; checks passwords and TOTP codes."""

    def __init__(
        self,
        db: Database,
        node_id: str,
        issuer: CertificateIssuer,
        audit: AuditRecorder,
        box: SecretBox,
        clock: Clock,
        hasher: Argon2PasswordHasher | None = None,
    ) -> None:
        self._db = db
        self._node_id = node_id
        self._issuer = issuer
        self._audit = audit
        self._box = box
        self._clock = clock
        self._given_hasher = hasher

    @functools.cached_property
    def _hasher(self) -> Argon2PasswordHasher:
        # Made when a password is first hashed or checked: most commands never do, and need not load argon2.
        return self._given_hasher or PasswordHasher()

    # --- offices -------------------------------------------------------------------

    def add_office(self, code: str, name: str, fax_number: str | None = None, actor: str = "system") -> Office:
        """Create an office and issue its encryption and signing certificates."""
        code = check_office_code(code)
        name = check_name(name, "office name")
        fax_number = check_fax_number(fax_number)
        now = self._clock.now()
        with self._db.begin() as conn:
            if conn.execute(select(t.offices.c.id).where(t.offices.c.code == code)).first():
                raise ConflictError("office {code!r} already exists", code=code)
            office_id = conn.execute(
                insert(t.offices).values(code=code, name=name, fax_number=fax_number, created_at=now)
            ).inserted_primary_key[0]  # type: ignore[index]
            certs = self._issuer.issue_office_certificates(conn, code, name)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="office.created",
                    object_type="office",
                    object_id=f"{code}@{self._node_id}",
                    digests={c.purpose.value: c.fingerprint for c in certs},
                    details={"fax_number": fax_number is not None},
                ),
                at=now,
            )
            return Office(id=office_id, code=code, name=name, fax_number=fax_number, created_at=now)

    def office(self, code: str, conn: Connection | None = None) -> Office:
        with self._maybe(conn) as c:
            row = c.execute(select(t.offices).where(t.offices.c.code == code)).one_or_none()
        if row is None:
            raise NotFoundError("no office {code!r}", code=code)
        return _office(row)

    def office_by_id(self, office_id: int) -> Office:
        with self._db.read() as c:
            row = c.execute(select(t.offices).where(t.offices.c.id == office_id)).one_or_none()
        if row is None:
            raise NotFoundError("no office with id {office_id}", office_id=office_id)
        return _office(row)

    def offices(self) -> list[Office]:
        with self._db.read() as c:
            rows = c.execute(select(t.offices).order_by(t.offices.c.code)).all()
        return [_office(r) for r in rows]

    # --- users ---------------------------------------------------------------------

    def add_user(
        self,
        login: str,
        office_code: str,
        role: str,
        clearance: int,
        display_name: str,
        password: str | None = None,
        actor: str = "system",
    ) -> NewAccount:
        """Create a user with a first-login password and a TOTP secret, and issue their seal certificate.

        The password is generated when not given; either way the user must change it
        at first login. Both secrets are returned once and never again.
        """
        login = check_login(login)
        role_ = check_role(role)
        clearance = check_clearance(clearance)
        display_name = check_name(display_name, "name")
        if password is None:
            password = _generate_password()
        else:
            check_password_strength(password, login, office_code)
        totp_secret = _pyotp().random_base32()
        now = self._clock.now()
        with self._db.begin() as conn:
            office = self.office(office_code, conn)
            if conn.execute(select(t.users.c.id).where(t.users.c.login == login)).first():
                raise ConflictError("user {login!r} already exists", login=login)
            user_id = conn.execute(
                insert(t.users).values(
                    login=login,
                    display_name=display_name,
                    office_id=office.id,
                    role=role_.value,
                    clearance=clearance,
                    password_hash=self._hasher.hash(password),
                    totp_secret_enc=self._box.seal(totp_secret.encode(), _totp_context(login)),
                    totp_confirmed=False,
                    totp_last_step=0,
                    must_change_password=True,
                    active=True,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            cert = self._issuer.issue_user_certificate(conn, login, display_name, office.code, office.name)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="user.created",
                    object_type="user",
                    object_id=login,
                    digests={"user-seal": cert.fingerprint},
                    details={"office": office.code, "role": role_.value, "clearance": clearance},
                ),
                at=now,
            )
            user = self._user_by(conn, t.users.c.id == user_id)
        uri = _pyotp().TOTP(totp_secret).provisioning_uri(name=f"{login}@{self._node_id}", issuer_name=TOTP_ISSUER)
        return NewAccount(user=user, password=password, totp_secret=totp_secret, totp_uri=uri)

    def user(self, login: str, conn: Connection | None = None) -> User:
        with self._maybe(conn) as c:
            return self._user_by(c, t.users.c.login == login)

    def user_by_id(self, user_id: int, conn: Connection | None = None) -> User:
        with self._maybe(conn) as c:
            return self._user_by(c, t.users.c.id == user_id)

    def users(self, office_code: str | None = None) -> list[User]:
        query = _user_query().order_by(t.offices.c.code, t.users.c.login)
        if office_code is not None:
            query = query.where(t.offices.c.code == office_code)
        with self._db.read() as c:
            return [_user(r) for r in c.execute(query).all()]

    def count_users(self) -> int:
        with self._db.read() as c:
            return int(c.execute(select(func.count()).select_from(t.users)).scalar_one())

    # --- readings (kana) and the fax address book ---------------------------------

    def set_kana(self, kind: str, key: str, kana: str | None, actor: str = "system") -> None:
        """Set the katakana reading of an office (``kind`` office, ``key`` its code) or a user (user, login)."""
        if kind not in ("office", "user"):
            raise ValidationError(f"kana is kept for offices and users, not {kind!r}")
        table, column = (t.offices, t.offices.c.code) if kind == "office" else (t.users, t.users.c.login)
        reading = check_name(kana, "kana") if kana else None
        with self._db.begin() as conn:
            done = conn.execute(update(table).where(column == key).values(kana=reading)).rowcount
            if not done:
                raise NotFoundError(f"no {kind} {key!r}")
            self._audit.record(conn, AuditEvent(actor=actor, action=f"{kind}.kana_set", object_type=kind,
                                                object_id=key, details={"set": reading is not None}),
                               at=self._clock.now())

    def add_fax_contact(
        self, office_code: str, name: str, number: str, kana: str | None = None, actor: str = "system"
    ) -> None:
        """Add an entry to an office's fax address book (FAX電話帳): a name, its kana, a number."""
        from inkless.db.tables_picker import fax_contacts

        name = check_name(name, "contact name")
        fax = check_fax_number(number)
        if fax is None:
            raise ValidationError("a fax contact needs a number")
        reading = check_name(kana, "kana") if kana else None
        now = self._clock.now()
        with self._db.begin() as conn:
            office_id = conn.execute(select(t.offices.c.id).where(t.offices.c.code == office_code)).scalar()
            if office_id is None:
                raise NotFoundError(f"no office {office_code!r}")
            if conn.execute(select(fax_contacts.c.id).where(fax_contacts.c.office_id == office_id,
                                                            fax_contacts.c.number == fax)).first():
                raise ConflictError(f"{fax} is already in the fax address book of {office_code}")
            conn.execute(insert(fax_contacts).values(office_id=office_id, name=name, kana=reading, number=fax,
                                                     created_at=now))
            self._audit.record(conn, AuditEvent(actor=actor, action="office.fax_contact_added", object_type="office",
                                                object_id=office_code, details={"number": fax}), at=now)

    # --- credentials ---------------------------------------------------------------

    def check_password(self, login: str, password: str) -> User:
        """The user whose password this is; AuthenticationError (same message) otherwise."""
        failure = AuthenticationError("wrong login or password")
        with self._db.begin() as c:
            row = c.execute(
                select(t.users.c.id, t.users.c.password_hash, t.users.c.active, t.users.c.locked_at)
                .where(t.users.c.login == login)
            ).one_or_none()
            if row is None:
                # Spend the same time as a real check, so that timing does not reveal which logins exist.
                _verify(self._hasher, _dummy_hash(), password)
                raise failure
            # A locked or deactivated account gets the same answer as a wrong password.
            if not _verify(self._hasher, row.password_hash, password) or not row.active or row.locked_at:
                raise failure
            if self._hasher.check_needs_rehash(row.password_hash):
                c.execute(
                    update(t.users).where(t.users.c.id == row.id).values(password_hash=self._hasher.hash(password))
                )
            return self._user_by(c, t.users.c.id == row.id)

    def totp_secret(self, login: str) -> str:
        """The user's TOTP secret (for enrolment and for ``inkless user totp`` on the node itself)."""
        with self._db.read() as c:
            row = c.execute(select(t.users.c.totp_secret_enc).where(t.users.c.login == login)).one_or_none()
        if row is None:
            raise NotFoundError("no user {login!r}", login=login)
        return self._box.open(row.totp_secret_enc, _totp_context(login)).decode()

    def current_totp(self, login: str) -> str:
        """The TOTP code valid now for ``login``."""
        return str(_pyotp().TOTP(self.totp_secret(login)).at(self._clock.now()))

    def totp_uri(self, login: str) -> str:
        return str(_pyotp().TOTP(self.totp_secret(login)).provisioning_uri(
            name=f"{login}@{self._node_id}", issuer_name=TOTP_ISSUER
        ))

    def verify_totp(self, login: str, code: str, actor: str | None = None) -> User:
        """Accept ``code`` once: a code (time step) already used is refused, even if still valid."""
        code = code.strip().replace(" ", "")
        secret = self.totp_secret(login)
        totp = _pyotp().TOTP(secret)
        now = self._clock.now()
        step_now = int(now.timestamp()) // totp.interval
        with self._db.begin() as c:
            last, confirmed = c.execute(
                select(t.users.c.totp_last_step, t.users.c.totp_confirmed).where(t.users.c.login == login)
            ).one()
            for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
                step = step_now + offset
                if step > last and secrets.compare_digest(totp.generate_otp(step), code):
                    # The step is claimed in one conditional UPDATE: of two requests sent at the same
                    # instant (which both read the old step above) only one changes the row.
                    claimed = c.execute(
                        update(t.users)
                        .where(
                            t.users.c.login == login,
                            or_(t.users.c.totp_last_step.is_(None), t.users.c.totp_last_step < step),
                        )
                        .values(totp_last_step=step, totp_confirmed=True)
                    ).rowcount
                    if claimed != 1:
                        break
                    if not confirmed:
                        # The first accepted code completes enrolment: recorded with the change itself.
                        self._audit.record(c, AuditEvent(actor=actor or login, action="user.totp_enrolled",
                                                         object_type="user", object_id=login))
                    return self._user_by(c, t.users.c.login == login)
        raise AuthenticationError("wrong or already used one-time code")

    def set_password(self, login: str, new_password: str, actor: str) -> None:
        """Change a password (clears the must-change flag); weak, common or guessable ones are refused."""
        with self._db.begin() as c:
            user = self._user_by(c, t.users.c.login == login)
            check_password_strength(new_password, user.login, user.office_code)
            result = c.execute(
                update(t.users)
                .where(t.users.c.login == login)
                .values(password_hash=self._hasher.hash(new_password), must_change_password=False)
            )
            if result.rowcount != 1:
                raise NotFoundError("no user {login!r}", login=login)
            self._audit.record(
                c, AuditEvent(actor=actor, action="user.password_changed", object_type="user", object_id=login)
            )

    def record_login(self, login: str, conn: Connection) -> None:
        """Remember when ``login`` last completed a login (shown to administrators)."""
        conn.execute(update(t.users).where(t.users.c.login == login).values(last_login_at=self._clock.now()))

    # --- helpers -------------------------------------------------------------------

    def _maybe(self, conn: Connection | None) -> Any:
        from contextlib import nullcontext

        return nullcontext(conn) if conn is not None else self._db.read()

    def _user_by(self, conn: Connection, condition: Any) -> User:
        row = conn.execute(_user_query().where(condition)).one_or_none()
        if row is None:
            raise NotFoundError("no such user")
        return _user(row)


def PasswordHasher() -> Argon2PasswordHasher:
    """argon2's password hasher with its default (RFC 9106) parameters, imported when first needed."""
    from argon2 import PasswordHasher as Hasher

    return Hasher()


@functools.cache
def _dummy_hash() -> str:
    # What a login for an unknown user is checked against, so that it takes as long as a real one.
    return PasswordHasher().hash("inkless-dummy-password")


def _verify(hasher: Argon2PasswordHasher, stored: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _pyotp() -> Any:
    import pyotp

    return pyotp


def _generate_password() -> str:
    # 4 groups of 4 from an alphabet without look-alikes: easy to read out and type.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def _user_query() -> Any:
    return select(
        t.users.c.id,
        t.users.c.login,
        t.users.c.display_name,
        t.users.c.office_id,
        t.offices.c.code.label("office_code"),
        t.users.c.role,
        t.users.c.clearance,
        t.users.c.totp_confirmed,
        t.users.c.must_change_password,
        t.users.c.active,
        t.users.c.created_at,
        t.users.c.last_login_at,
        t.users.c.locked_at,
    ).join(t.offices, t.offices.c.id == t.users.c.office_id)


def _office(row: Row[Any]) -> Office:
    return Office(id=row.id, code=row.code, name=row.name, fax_number=row.fax_number, created_at=row.created_at,
                  kana=row.kana)


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        login=row.login,
        display_name=row.display_name,
        office_id=row.office_id,
        office_code=row.office_code,
        role=Role(row.role),
        clearance=row.clearance,
        totp_confirmed=bool(row.totp_confirmed),
        must_change_password=bool(row.must_change_password),
        active=bool(row.active),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        locked_at=row.locked_at,
    )


def office_list(offices: Sequence[Office]) -> list[dict[str, Any]]:
    """Offices as plain dicts (for ``--json`` and the API)."""
    return [
        {"code": o.code, "name": o.name, "fax_number": o.fax_number, "created_at": o.created_at.isoformat()}
        for o in offices
    ]
