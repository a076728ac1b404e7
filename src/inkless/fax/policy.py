"""What may leave by fax: classification ≥ 2 never; classification 1 only when the sender confirms."""

from __future__ import annotations

from inkless.errors import PolicyError, ValidationError

# The highest classification that may go out by fax at all (1 = internal, 内部).
MAX_FAX_CLASSIFICATION = 1

# English sentences that are also the message ids of the web UI's catalogue (Japanese there).
REFUSED = "Documents of classification {level} (confidential or higher) are never sent by fax."
NEEDS_CONFIRMATION = (
    "Classification 1 (internal) needs confirmation before it is faxed: tick the confirmation box or pass --confirm."
)


def check_fax_allowed(classification: int, confirm_internal: bool) -> None:
    """Raise PolicyError (level ≥ 2) or ValidationError (level 1 without confirmation)."""
    if not isinstance(classification, int) or not 0 <= classification <= 3:
        raise ValidationError("classification {classification!r} must be 0-3 (0 公開, 1 内部, 2 秘, 3 極秘)",
                              classification=classification)
    if classification > MAX_FAX_CLASSIFICATION:
        raise PolicyError(REFUSED, level=classification)
    if classification == 1 and not confirm_internal:
        raise ValidationError(NEEDS_CONFIRMATION)


def fax_allowed(classification: int) -> bool:
    """True when a document of this classification may be faxed at all (the fallback asks this)."""
    return 0 <= classification <= MAX_FAX_CLASSIFICATION
