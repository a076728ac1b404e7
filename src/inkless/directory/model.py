"""Domain types of the directory: offices and users."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from inkless.errors import ValidationError
from inkless.text import check_text


class Role(StrEnum):
    """What a user may do.

    Clerks send and start routes, approvers stamp; integrators are clerks who may also hold API
    tokens (for scanners and line-of-business systems); office administrators (``admin``) run
    their own office; node operators (``operator``) run the whole node. See docs/admin.md.
    """

    CLERK = "clerk"
    APPROVER = "approver"
    ADMIN = "admin"
    OPERATOR = "operator"
    INTEGRATOR = "integrator"

    @property
    def administers(self) -> bool:
        """Office administrators and node operators: the console, the audit log, fax and peer settings."""
        return self in (Role.ADMIN, Role.OPERATOR)

    @property
    def holds_tokens(self) -> bool:
        """Who sees API tokens in the UI and may create them from a browser session."""
        return self in (Role.ADMIN, Role.OPERATOR, Role.INTEGRATOR)


class Clearance:
    """Classification levels: 0 public, 1 internal (内部), 2 confidential (秘), 3 strictly confidential (極秘)."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    STRICTLY_CONFIDENTIAL = 3
    LABELS: ClassVar[dict[int, str]] = {0: "公開", 1: "内部", 2: "秘", 3: "極秘"}
    LABELS_EN: ClassVar[dict[int, str]] = {0: "public", 1: "internal", 2: "confidential", 3: "strictly confidential"}


OFFICE_CODE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
FAX_NUMBER_RE = re.compile(r"^\+?[0-9][0-9 -]{3,30}$")


@dataclass(frozen=True)
class Office:
    """A department (部署) of the node; addressed as ``code@node``."""

    id: int
    code: str
    name: str
    fax_number: str | None
    created_at: datetime
    kana: str | None = None  # the reading in katakana (ミンジキョク)

    def address(self, node_id: str) -> str:
        return f"{self.code}@{node_id}"


@dataclass(frozen=True)
class User:
    """A person with an account; belongs to one office."""

    id: int
    login: str
    display_name: str
    office_id: int
    office_code: str
    role: Role
    clearance: int
    totp_confirmed: bool
    must_change_password: bool
    active: bool
    created_at: datetime
    last_login_at: datetime | None = None
    locked_at: datetime | None = None

    @property
    def locked(self) -> bool:
        """Locked by an administrator: no login and no API token until unlocked."""
        return self.locked_at is not None

    @property
    def surname(self) -> str:
        """The family name, as carved on a personal seal (the first word of the name)."""
        return self.display_name.replace("\u3000", " ").split(" ")[0]


@dataclass(frozen=True)
class NewAccount:
    """What the creator of an account must hand over once: first password and TOTP secret."""

    user: User
    password: str
    totp_secret: str
    totp_uri: str


def check_office_code(code: str) -> str:
    if not OFFICE_CODE_RE.match(code):
        raise ValidationError(
            f"office code {code!r} must be lower-case letters, digits and '-' (e.g. 'civil-affairs')"
        )
    return code


def check_login(login: str) -> str:
    if not LOGIN_RE.match(login):
        raise ValidationError(
            f"login {login!r} must be 2-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return login


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError("role {role!r} must be one of: clerk, approver, admin", role=role) from None


def check_clearance(level: int) -> int:
    if not 0 <= level <= 3:
        raise ValidationError("clearance {level} must be 0-3 (0 公開, 1 内部, 2 秘, 3 極秘)", level=level)
    return level


def check_name(name: str, what: str) -> str:
    name = check_text(name, what).strip()
    if not name or len(name) > 200:
        raise ValidationError("{what} must be 1-200 characters", what=what)
    return name


KANA_RE = re.compile(r"^[\u30a0-\u30ff\u3040-\u309f\u3000 ・ー]+$")


def check_kana(kana: str | None) -> str | None:
    """A name's reading in kana (katakana or hiragana, spaces allowed); None when empty."""
    if kana is None or not kana.strip():
        return None
    kana = kana.strip()
    if len(kana) > 200 or not KANA_RE.match(kana):
        raise ValidationError(f"reading {kana!r} must be written in kana (e.g. ミンジキョク)")
    return kana


def check_fax_number(number: str | None) -> str | None:
    if number is None or number == "":
        return None
    if not FAX_NUMBER_RE.match(number):
        raise ValidationError("fax number {number!r} must be digits, optionally with '+', spaces or '-'", number=number)
    return number
