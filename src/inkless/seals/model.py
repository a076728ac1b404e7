"""Domain types of sealing and verification: where a seal goes, and what a verifier found.

The verdict vocabulary is that of ETSI EN 319 102-1 (and the EU DSS validation reports):
every seal, and the document as a whole, is PASSED, INDETERMINATE or FAILED, with a
sub-indication naming the reason when it is not PASSED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from inkless.errors import ValidationError


class SealKind(StrEnum):
    """The three kinds of seal an office uses."""

    PERSONAL = "personal"  # 認印: surname in a ring
    DATE = "date"  # 日付印: office name / date / surname in three bands
    OFFICE = "office"  # 角印: office name in a square grid


@dataclass(frozen=True)
class SealPlacement:
    """Where a seal goes: a new field at ``box`` on ``page`` (1-based), or an existing empty signature field."""

    page: int = 1
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 in PDF points, origin bottom-left
    field_name: str | None = None

    def __post_init__(self) -> None:
        if self.page < 1:
            raise ValidationError(f"page numbers start at 1, got {self.page}")
        if (self.box is None) == (self.field_name is None):
            raise ValidationError("a seal placement needs either a box or the name of an existing field")
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if x2 <= x1 or y2 <= y1:
                raise ValidationError(f"the seal box {self.box} is empty (x2 must exceed x1 and y2 exceed y1)")


class Indication(StrEnum):
    """The main status of ETSI EN 319 102-1 §5.1.3."""

    PASSED = "PASSED"
    INDETERMINATE = "INDETERMINATE"
    FAILED = "FAILED"

    @property
    def severity(self) -> int:
        return {"PASSED": 0, "INDETERMINATE": 1, "FAILED": 2}[self.value]


class SubIndication(StrEnum):
    """The sub-indications of ETSI EN 319 102-1 §5.1.3 that inkless reports."""

    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    TRY_LATER = "TRY_LATER"
    NO_POE = "NO_POE"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    TIMESTAMP_ORDER_FAILURE = "TIMESTAMP_ORDER_FAILURE"
    GENERIC = "GENERIC"


class PadesLevel(StrEnum):
    """PAdES baseline levels (ETSI EN 319 142-1)."""

    NONE = "none"  # not a PAdES signature (e.g. adbe.pkcs7.detached)
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


class Change(StrEnum):
    """What changed in the file after a seal, from pyHanko's difference analysis (ModificationLevel)."""

    NONE = "NONE"  # the seal covers the whole file
    LTA_UPDATES = "LTA_UPDATES"  # only validation data and document timestamps were added
    FORM_FILLING = "FORM_FILLING"  # form fields filled, further seals applied
    ANNOTATIONS = "ANNOTATIONS"  # comments / annotations added
    OTHER = "OTHER"  # anything else: page content, pages, images


@dataclass(frozen=True)
class SealResult:
    """What a verifier found about one seal (or one document timestamp), in file order."""

    index: int  # 1-based, in the order the seals were applied
    field_name: str
    kind: str  # "seal" or "document-timestamp"
    indication: Indication
    subindication: SubIndication | None
    reason: str  # a sentence; empty when PASSED without remarks
    signer_name: str | None = None  # CN
    office: str | None = None  # OU
    organisation: str | None = None  # O
    certificate_serial: str | None = None
    signing_time: datetime | None = None  # claimed by the signer (signed attribute)
    timestamp_time: datetime | None = None  # from the signature (or document) timestamp token
    intact: bool = False  # the signed bytes hash to the signed digest
    valid: bool = False  # ... and the signature over them verifies
    trusted: bool = False  # the certificate chains to a known node CA
    trust_anchor: str | None = None
    revocation: str = "unknown"  # "good", "revoked", "unknown"
    coverage: str | None = None  # ENTIRE_FILE / ENTIRE_REVISION / CONTIGUOUS_BLOCK_FROM_START ...
    change: Change | None = None
    change_summary: str = ""  # a sentence: what changed after this seal
    changed_fields: tuple[str, ...] = ()
    certification: str | None = None  # "certifying (form filling allowed)", "locks the document", None
    docmdp_ok: bool | None = None
    pades_level: PadesLevel = PadesLevel.NONE
    page: int | None = None  # 1-based page of the visible seal
    rect: tuple[float, float, float, float] | None = None  # its widget rectangle in points
    subfilter: str | None = None
    imprint_png: bytes | None = field(default=None, repr=False)  # the appearance as rendered on the page

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``inkless verify --json`` and ``/api/v1/verify``."""
        return {
            "index": self.index,
            "field_name": self.field_name,
            "kind": self.kind,
            "indication": self.indication.value,
            "subindication": self.subindication.value if self.subindication else None,
            "reason": self.reason,
            "signer_name": self.signer_name,
            "office": self.office,
            "organisation": self.organisation,
            "certificate_serial": self.certificate_serial,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "timestamp_time": self.timestamp_time.isoformat() if self.timestamp_time else None,
            "intact": self.intact,
            "valid": self.valid,
            "trusted": self.trusted,
            "trust_anchor": self.trust_anchor,
            "revocation": self.revocation,
            "coverage": self.coverage,
            "change": self.change.value if self.change else None,
            "change_summary": self.change_summary,
            "changed_fields": list(self.changed_fields),
            "certification": self.certification,
            "docmdp_ok": self.docmdp_ok,
            "pades_level": self.pades_level.value,
            "page": self.page,
            "rect": list(self.rect) if self.rect else None,
            "subfilter": self.subfilter,
        }


@dataclass(frozen=True)
class VerificationReport:
    """Every seal of a document in order, and the overall verdict (the worst of them)."""

    document_sha256: str
    seals: tuple[SealResult, ...]
    indication: Indication
    subindication: SubIndication | None
    reason: str
    validated_at: datetime

    @property
    def has_seals(self) -> bool:
        return any(s.kind == "seal" for s in self.seals)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the whole report."""
        return {
            "document_sha256": self.document_sha256,
            "indication": self.indication.value,
            "subindication": self.subindication.value if self.subindication else None,
            "reason": self.reason,
            "validated_at": self.validated_at.isoformat(),
            "seals": [s.to_dict() for s in self.seals],
        }
