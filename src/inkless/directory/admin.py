"""Administration of offices and users, with who may do what.

Two kinds of administrators (see docs/admin.md):

- an **office administrator** (role ``admin``) manages the users and the settings of their own
  office only, and may grant at most the ``admin`` role;
- a **node operator** (role ``operator``) manages every office and user, adds offices, and may
  grant any role.

The command line runs on the node itself, as its operator: it passes ``by=None``. Every change is
an audit entry naming who made it, in the transaction that makes it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

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
    check_kana,
    check_name,
    check_role,
)
from inkless.directory.service import DirectoryService, _totp_context
from inkless.errors import ConflictError, PolicyError, ValidationError
from inkless.pki.keystore import SecretBox

CLI_ACTOR = "cli"
# A seal image is a scan of a stamp: small. Larger files are refused before they are decoded.
MAX_SEAL_IMAGE_BYTES = 1_000_000
MIN_SEAL_PIXELS = 32
MAX_SEAL_PIXELS = 2000
SEAL_IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}

NOT_YOUR_OFFICE = "an office administrator may only manage their own office"
OPERATORS_ONLY = "only a node operator may do this"


@dataclass(frozen=True)
class SealImage:
    """An office's uploaded seal image, as stored."""

    office_code: str
    media_type: str
    data: bytes
    sha256: str
    width: int
    height: int
    uploaded_at: datetime
    uploaded_by: str


def check_seal_image(data: bytes) -> tuple[str, int, int]:
    """(media type, width, height) of a PNG or JPEG seal image, judged by its content, not its name."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValidationError("the seal image is empty")
    if len(data) > MAX_SEAL_IMAGE_BYTES:
        raise ValidationError(f"the seal image is larger than {MAX_SEAL_IMAGE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format or ""
            width, height = probe.size
            if kind in SEAL_IMAGE_FORMATS and MIN_SEAL_PIXELS <= min(width, height) and max(width, height) <= (
                MAX_SEAL_PIXELS
            ):
                probe.load()  # decodes every pixel: a truncated or corrupt file fails here
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ValidationError("the seal image is not a readable PNG or JPEG image") from None
    if kind not in SEAL_IMAGE_FORMATS:
        raise ValidationError("the seal image must be a PNG or JPEG image")
    if min(width, height) < MIN_SEAL_PIXELS or max(width, height) > MAX_SEAL_PIXELS:
        raise ValidationError(
            f"the seal image must be {MIN_SEAL_PIXELS}-{MAX_SEAL_PIXELS} pixels wide and high"
        )
    return SEAL_IMAGE_FORMATS[kind], width, height


class Administration:
    """What the admin console and the CLI change in the directory, with the caller's scope enforced."""

    def __init__(
        self,
        db: Database,
        node_id: str,
        directory: DirectoryService,
        audit: AuditRecorder,
        box: SecretBox,
        clock: Clock,
        cover_default: Callable[[str, bool, str], None] | None = None,
    ) -> None:
        self._db = db
        self._node_id = node_id
        self._directory = directory
        self._audit = audit
        self._box = box
        self._clock = clock
        # The fax service owns each office's cover-page default; it is set through it (when there is one).
        self._cover_default = cover_default

    # --- scope ------------------------------------------------------------------------------

    @staticmethod
    def is_operator(by: User | None) -> bool:
        """The CLI (``by`` None) and users with the ``operator`` role run the whole node."""
        return by is None or by.role == Role.OPERATOR

    def check_office(self, by: User | None, office_code: str) -> None:
        """PolicyError unless ``by`` may administer ``office_code``."""
        if self.is_operator(by):
            return
        assert by is not None
        if not by.role.administers:
            raise PolicyError("administrators only")
        if by.office_code != office_code:
            raise PolicyError(NOT_YOUR_OFFICE)

    def _check_grant(self, by: User | None, role: Role) -> None:
        if role == Role.OPERATOR and not self.is_operator(by):
            raise PolicyError("only a node operator may make someone a node operator")

    def offices(self, by: User | None) -> list[Office]:
        """The offices ``by`` administers: every office for an operator, their own for an office admin."""
        if self.is_operator(by):
            return self._directory.offices()
        assert by is not None
        self.check_office(by, by.office_code)
        return [self._directory.office(by.office_code)]

    def users(self, by: User | None, office_code: str | None = None) -> list[User]:
        """The users ``by`` may see here (one office, or all offices ``by`` administers)."""
        if office_code is not None:
            self.check_office(by, office_code)
            return self._directory.users(office_code)
        if self.is_operator(by):
            return self._directory.users()
        assert by is not None
        self.check_office(by, by.office_code)
        return self._directory.users(by.office_code)

    def user(self, by: User | None, login: str) -> User:
        """One user ``by`` may administer; PolicyError for a user of another office."""
        user = self._directory.user(login)
        self.check_office(by, user.office_code)
        return user

    # --- offices ------------------------------------------------------------------------------

    def add_office(self, by: User | None, code: str, name: str, fax_number: str | None = None,
                   kana: str | None = None) -> Office:
        """Create an office (node operators)."""
        if not self.is_operator(by):
            raise PolicyError(OPERATORS_ONLY)
        kana = check_kana(kana)
        office = self._directory.add_office(code, name, fax_number, actor=_actor(by))
        if kana is not None:
            return self.update_office(by, office.code, office.name, kana, office.fax_number)
        return office

    def update_office(self, by: User | None, code: str, name: str, kana: str | None,
                      fax_number: str | None) -> Office:
        """Change an office's name, its reading and its fax number."""
        self.check_office(by, code)
        name = check_name(name, "office name")
        kana = check_kana(kana)
        fax = check_fax_number((fax_number or "").strip() or None)
        with self._db.begin() as conn:
            before = self._directory.office(code, conn)
            conn.execute(update(t.offices).where(t.offices.c.id == before.id)
                         .values(name=name, kana=kana, fax_number=fax))
            changed = {k: v for k, v in (("name", name), ("kana", kana), ("fax_number", fax))
                       if getattr(before, k) != v}
            self._record(conn, by, "office.updated", "office", f"{code}@{self._node_id}",
                         {"changed": sorted(changed)})
            return self._directory.office(code, conn)

    def set_cover_default(self, by: User | None, code: str, on: bool) -> None:
        """Whether the office's faxes get a cover page unless the sender says otherwise."""
        self.check_office(by, code)
        if self._cover_default is None:
            raise ValidationError("this node has no fax service")
        self._cover_default(code, on, _actor(by))

    def set_seal_image(self, by: User | None, code: str, data: bytes) -> SealImage:
        """Store the office's seal image (PNG or JPEG, checked by decoding it)."""
        self.check_office(by, code)
        media_type, width, height = check_seal_image(data)
        digest = hashlib.sha256(data).hexdigest()
        now = self._clock.now()
        with self._db.begin() as conn:
            office = self._directory.office(code, conn)
            conn.execute(delete(t.office_seal_images).where(t.office_seal_images.c.office_id == office.id))
            conn.execute(insert(t.office_seal_images).values(
                office_id=office.id, media_type=media_type, image=data, sha256=digest, width=width, height=height,
                uploaded_at=now, uploaded_by=_actor(by)))
            self._audit.record(conn, AuditEvent(
                actor=_actor(by), action="office.seal_image_set", object_type="office",
                object_id=f"{code}@{self._node_id}", digests={"image": digest},
                details={"media_type": media_type, "width": width, "height": height}), at=now)
        return SealImage(code, media_type, data, digest, width, height, now, _actor(by))

    def seal_image(self, by: User | None, code: str) -> SealImage | None:
        """The office's seal image, if one was uploaded."""
        self.check_office(by, code)
        with self._db.read() as conn:
            row = conn.execute(
                select(t.office_seal_images).join(t.offices, t.offices.c.id == t.office_seal_images.c.office_id)
                .where(t.offices.c.code == code)
            ).one_or_none()
        if row is None:
            return None
        return SealImage(code, row.media_type, bytes(row.image), row.sha256, row.width, row.height,
                         row.uploaded_at, row.uploaded_by)

    # --- users --------------------------------------------------------------------------------

    def add_user(self, by: User | None, login: str, office_code: str, role: str, clearance: int,
                 display_name: str) -> NewAccount:
        """Create a user in an office ``by`` administers; the first-login secrets are returned once."""
        self.check_office(by, office_code)
        self._check_grant(by, check_role(role))
        return self._directory.add_user(login, office_code, role, clearance, display_name, actor=_actor(by))

    def change_user(self, by: User | None, login: str, role: str, clearance: int) -> User:
        """Change a user's role and clearance."""
        user = self.user(by, login)
        new_role = check_role(role)
        clearance = check_clearance(clearance)
        self._check_grant(by, new_role)
        if user.role == Role.OPERATOR and not self.is_operator(by):
            raise PolicyError(OPERATORS_ONLY)
        if by is not None and by.login == login and new_role != by.role:
            raise PolicyError("administrators cannot change their own role")
        with self._db.begin() as conn:
            conn.execute(update(t.users).where(t.users.c.id == user.id).values(role=new_role.value,
                                                                                 clearance=clearance))
            self._record(conn, by, "user.changed", "user", login, {
                "role": [user.role.value, new_role.value], "clearance": [user.clearance, clearance]})
            return self._directory.user(login, conn)

    def reset_totp(self, by: User | None, login: str) -> User:
        """Give the user a new TOTP key: the old authenticator stops working, the next login enrols again."""
        user = self._target(by, login)
        import pyotp

        secret = pyotp.random_base32()
        with self._db.begin() as conn:
            conn.execute(update(t.users).where(t.users.c.id == user.id).values(
                totp_secret_enc=self._box.seal(secret.encode(), _totp_context(login)),
                totp_confirmed=False, totp_last_step=0))
            ended = self._end_sessions(conn, user.id)
            self._record(conn, by, "user.totp_reset", "user", login, {"sessions_ended": ended})
            return self._directory.user(login, conn)

    def lock(self, by: User | None, login: str) -> User:
        """Lock an account: its sessions end at once, no login and no API token work until unlocked."""
        user = self._target(by, login)
        if user.locked:
            raise ConflictError(f"user {login!r} is already locked")
        with self._db.begin() as conn:
            conn.execute(update(t.users).where(t.users.c.id == user.id).values(locked_at=self._clock.now()))
            ended = self._end_sessions(conn, user.id)
            self._record(conn, by, "user.locked", "user", login, {"sessions_ended": ended})
            return self._directory.user(login, conn)

    def unlock(self, by: User | None, login: str) -> User:
        """Unlock an account."""
        user = self._target(by, login)
        if not user.locked:
            raise ConflictError(f"user {login!r} is not locked")
        with self._db.begin() as conn:
            conn.execute(update(t.users).where(t.users.c.id == user.id).values(locked_at=None))
            self._record(conn, by, "user.unlocked", "user", login, {})
            return self._directory.user(login, conn)

    def set_active(self, by: User | None, login: str, active: bool) -> User:
        """Deactivate (someone who left) or reactivate an account; deactivation ends its sessions."""
        user = self._target(by, login)
        if user.active == active:
            raise ConflictError(f"user {login!r} is already {'active' if active else 'deactivated'}")
        with self._db.begin() as conn:
            conn.execute(update(t.users).where(t.users.c.id == user.id).values(active=active))
            ended = 0 if active else self._end_sessions(conn, user.id)
            self._record(conn, by, "user.reactivated" if active else "user.deactivated", "user", login,
                         {"sessions_ended": ended})
            return self._directory.user(login, conn)

    # --- helpers ------------------------------------------------------------------------------

    def _target(self, by: User | None, login: str) -> User:
        """A user ``by`` may lock, reset or deactivate: not themselves (no one locks themselves out)."""
        user = self.user(by, login)
        if by is not None and by.login == login:
            raise PolicyError("administrators cannot lock, reset or deactivate their own account")
        if user.role == Role.OPERATOR and not self.is_operator(by):
            raise PolicyError(OPERATORS_ONLY)
        return user

    @staticmethod
    def _end_sessions(conn: Connection, user_id: int) -> int:
        result = conn.execute(delete(t.web_sessions).where(t.web_sessions.c.user_id == user_id))
        return int(result.rowcount or 0)

    def _record(self, conn: Connection, by: User | None, action: str, object_type: str, object_id: str,
                details: dict[str, object]) -> None:
        self._audit.record(conn, AuditEvent(
            actor=_actor(by), action=action, object_type=object_type, object_id=object_id, details=details))


def _actor(by: User | None) -> str:
    return CLI_ACTOR if by is None else by.login
