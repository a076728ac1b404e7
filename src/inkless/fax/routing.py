"""Inbound routing and the junk-fax block list: pure rules, no database.

A received fax goes to the first office that matches, in this order:

1. the administrator's explicit rules, lowest ``priority`` first (ties: oldest rule first):
   ``did`` (the called number equals the pattern), ``subaddress`` (the T.30 sub-address equals
   the pattern), ``tsi`` / ``cid`` (the sender's station id / calling number fully matches the
   pattern as a regular expression);
2. the office whose published fax number is the called number (DID).

Explicit rules go first so that one shared number can be split by sub-address. A fax that
matches nothing is *unroutable*: it waits in the administrators' queue, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inkless.errors import ValidationError

RULE_KINDS = ("did", "subaddress", "tsi", "cid")
BLOCK_KINDS = ("cid", "tsi")
MAX_PATTERN = 128


@dataclass(frozen=True)
class RoutingRule:
    """Send faxes matching ``pattern`` (of ``kind``) to the office ``office_code``."""

    id: int
    kind: str
    pattern: str
    office_code: str
    priority: int


@dataclass(frozen=True)
class BlockEntry:
    """Drop calls whose calling number (``cid``) or station id (``tsi``) matches ``pattern``."""

    id: int
    kind: str
    pattern: str
    reason: str | None


@dataclass(frozen=True)
class RouteDecision:
    """Where a fax goes: an office code and why, or nowhere (unroutable)."""

    office_code: str | None
    routed_by: str | None

    @property
    def routed(self) -> bool:
        return self.office_code is not None


def normalise_number(number: str | None) -> str:
    """Digits only, with Japan's +81 written as the national trunk prefix 0 (03-3580-4111 == +81 3 3580 4111)."""
    if not number:
        return ""
    text = number.strip()
    digits = re.sub(r"\D", "", text)
    if text.startswith("+81"):
        return "0" + digits[2:]
    if text.startswith("+"):
        return "+" + digits
    return digits


def normalise_ident(ident: str | None) -> str:
    """A T.30 station id as compared: trimmed (terminals pad it with spaces to 20 characters)."""
    return (ident or "").strip()


def check_pattern(kind: str, pattern: str, kinds: Sequence[str]) -> str:
    """Validate a rule or block pattern; ValidationError naming what is wrong."""
    if kind not in kinds:
        raise ValidationError(f"kind {kind!r} must be one of: {', '.join(kinds)}")
    pattern = pattern.strip()
    if not pattern or len(pattern) > MAX_PATTERN:
        raise ValidationError(f"pattern must be 1-{MAX_PATTERN} characters")
    if any(ord(ch) < 32 for ch in pattern):
        raise ValidationError("pattern must not contain control characters")
    if kind == "did":
        if not normalise_number(pattern).lstrip("+"):
            raise ValidationError(f"did pattern {pattern!r} must be a telephone number")
    elif kind in ("tsi", "cid"):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValidationError(f"{kind} pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return pattern


def _regex_matches(pattern: str, value: str) -> bool:
    if not value:
        return False
    try:
        return re.fullmatch(pattern, value, flags=re.IGNORECASE) is not None
    except re.error:
        return False


def _number_matches(pattern: str, value: str) -> bool:
    # A CID pattern may be written as a number (with '-' or '+81') or as a regex over the digits.
    if not value:
        return False
    if normalise_number(pattern) == value:
        return True
    return _regex_matches(pattern, value)


def blocked_by(
    blocks: Iterable[BlockEntry], calling_number: str | None, remote_ident: str | None
) -> BlockEntry | None:
    """The first block-list entry that matches the call, or None."""
    cid = normalise_number(calling_number)
    tsi = normalise_ident(remote_ident)
    for entry in blocks:
        if entry.kind == "cid" and _number_matches(entry.pattern, cid):
            return entry
        if entry.kind == "tsi" and _regex_matches(entry.pattern, tsi):
            return entry
    return None


def route(
    offices: Iterable[tuple[str, str | None]],
    rules: Iterable[RoutingRule],
    *,
    called_number: str | None,
    sub_address: str | None,
    remote_ident: str | None,
    calling_number: str | None,
) -> RouteDecision:
    """Decide which office gets a received fax (see the module docstring for the order)."""
    did = normalise_number(called_number)
    sub = (sub_address or "").strip()
    tsi = normalise_ident(remote_ident)
    cid = normalise_number(calling_number)
    for rule in sorted(rules, key=lambda r: (r.priority, r.id)):
        if rule.kind == "did":
            hit = bool(did) and normalise_number(rule.pattern) == did
        elif rule.kind == "subaddress":
            hit = bool(sub) and rule.pattern.strip() == sub
        elif rule.kind == "tsi":
            hit = _regex_matches(rule.pattern, tsi)
        else:
            hit = _number_matches(rule.pattern, cid)
        if hit:
            return RouteDecision(rule.office_code, f"rule:{rule.id}")
    if did:
        for code, fax_number in offices:
            if fax_number and normalise_number(fax_number) == did:
                return RouteDecision(code, "did")
    return RouteDecision(None, None)
