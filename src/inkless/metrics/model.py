"""Domain types of the procedure catalogue (手続一覧): a procedure, its seal requirement, its versions."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from inkless.errors import ValidationError
from inkless.text import check_text

# The same codes messages carry in their ``procedure_code`` field.
PROCEDURE_CODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_NAME = 300
MAX_MINISTRY = 200
MAX_LEGAL_BASIS = 2000


class SealRequirement(StrEnum):
    """The seal the paper procedure asked for: なし / 認印 / 実印 / 公印."""

    NONE = "none"
    MITOME = "mitome"
    JITSUIN = "jitsuin"
    OFFICIAL = "official"

    @property
    def label(self) -> str:
        """The Japanese word, as catalogues print it."""
        return SEAL_LABELS[self.value]

    @classmethod
    def parse(cls, text: str) -> SealRequirement:
        """なし/認印/実印/公印 (or none/mitome/jitsuin/official); empty means なし."""
        value = text.strip()
        if not value or value in ("-", "－", "不要"):
            return cls.NONE
        for code, label in SEAL_LABELS.items():
            if value == label or value.lower() == code:
                return cls(code)
        raise ValidationError(f"seal: {value!r} is not one of なし, 認印, 実印, 公印 (none, mitome, jitsuin, official)")


SEAL_LABELS = {"none": "なし", "mitome": "認印", "jitsuin": "実印", "official": "公印"}

_YES = {"可", "○", "〇", "yes", "y", "true", "1", "あり", "有"}
_NO = {"不可", "×", "no", "n", "false", "0", "なし", "無", ""}


def parse_allowed(text: str) -> bool:
    """Whether fax or paper is still allowed: 可/不可 (or yes/no, true/false, 1/0, ○/×)."""
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValidationError(f"fax_or_paper_allowed: {text.strip()!r} is not 可 or 不可 (yes or no)")


def check_procedure_code(code: str) -> str:
    code = code.strip()
    if not PROCEDURE_CODE_RE.match(code):
        raise ValidationError(
            f"code: {code!r} is not a procedure code (1–64 letters, digits, '.', '_' or '-')"
        )
    return code


def _bounded(value: str, field: str, limit: int, *, required: bool) -> str:
    value = check_text(value.strip(), field)
    if required and not value:
        raise ValidationError(f"{field}: must not be empty")
    if len(value) > limit:
        raise ValidationError(f"{field}: longer than {limit} characters")
    return value


@dataclass(frozen=True)
class ProcedureFields:
    """What an administrator or a CSV row says about a procedure (everything but its history)."""

    code: str
    name: str
    ministry: str
    office_code: str | None
    legal_basis: str
    seal_required: SealRequirement
    fax_or_paper_allowed: bool

    @classmethod
    def checked(
        cls, code: str, name: str, ministry: str, office_code: str | None, legal_basis: str,
        seal_required: SealRequirement | str, fax_or_paper_allowed: bool,
    ) -> ProcedureFields:
        """Validated and normalised (NFC, stripped); ValidationError names the field."""
        seal = seal_required if isinstance(seal_required, SealRequirement) else SealRequirement.parse(seal_required)
        office = (office_code or "").strip() or None
        return cls(
            code=check_procedure_code(code),
            name=_bounded(name, "name", MAX_NAME, required=True),
            ministry=_bounded(ministry, "ministry", MAX_MINISTRY, required=False),
            office_code=office,
            legal_basis=_bounded(legal_basis, "legal_basis", MAX_LEGAL_BASIS, required=False),
            seal_required=seal,
            fax_or_paper_allowed=fax_or_paper_allowed,
        )

    def differences(self, other: ProcedureFields) -> list[str]:
        """Names of the fields whose values differ from ``other``."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


@dataclass(frozen=True)
class Procedure:
    """A procedure type in the catalogue, at its current version."""

    fields: ProcedureFields
    retired: bool
    version: int
    updated_at: datetime
    updated_by: str

    @property
    def code(self) -> str:
        return self.fields.code

    @property
    def name(self) -> str:
        return self.fields.name


@dataclass(frozen=True)
class ProcedureVersion:
    """One recorded version: what the procedure looked like after a change, who made it, when."""

    fields: ProcedureFields
    retired: bool
    version: int
    change: str
    changed_fields: tuple[str, ...]
    changed_at: datetime
    changed_by: str
    audit_index: int | None


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: codes created, changed, left as they were."""

    created: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
