"""The picker service: matches for a query, and resolving what a clerk typed (no web types)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_delivery import messages, outbox
from inkless.db.tables_picker import fax_contacts
from inkless.errors import InklessError, ValidationError

KINDS = ("office", "person", "fax")
DEFAULT_LIMIT = 20
# How many recent and frequent recipients an empty office query offers.
RECENT = 8


@dataclass(frozen=True)
class Match:
    """One thing a picker offers: what goes into the field (``value``) and what the clerk reads."""

    kind: str  # office, person or fax
    value: str  # an office address, a login, or a fax number
    label: str  # 民事局 / 田中 花子 / 山本司法書士事務所
    detail: str = ""  # the organisation, the office, the number …
    kana: str = ""
    recent: int = 0  # how often the caller's office sent to it (recent and frequent recipients first)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "value": self.value, "label": self.label, "detail": self.detail,
                "kana": self.kana, "recent": self.recent}


@dataclass(frozen=True)
class RemoteEntry:
    """An office of a pinned peer, as its signed directory lists it."""

    address: str
    name: str
    kana: str | None
    organisation: str | None
    fax_number: str | None


def normalise(text: str) -> str:
    """Fold a query or a name for matching: NFKC, hiragana as katakana, lower case, no spaces or hyphens."""
    folded = unicodedata.normalize("NFKC", text).lower()
    out = []
    for ch in folded:
        code = ord(ch)
        if 0x3041 <= code <= 0x3096:  # hiragana → katakana: みんじ finds ミンジキョク
            ch = chr(code + 0x60)
        if ch.isspace() or ch in "-‐－ー・･":
            continue
        out.append(ch)
    return "".join(out)


def _digits(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


class Picker:
    """Finds offices (this node's and pinned peers'), people of this node, and fax numbers."""

    def __init__(self, db: Database, node_id: str, organisation: str,
                 remote: Callable[[], Iterable[RemoteEntry]] | None = None) -> None:
        self._db = db
        self._node_id = node_id
        self._organisation = organisation
        self._remote = remote

    # --- search --------------------------------------------------------------------

    def search(self, query: str, office_code: str, kinds: Sequence[str] = KINDS,
               limit: int = DEFAULT_LIMIT) -> list[Match]:
        """Matches for ``query`` of the given kinds; an empty query offers the office's recent recipients."""
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValidationError(f"unknown picker kind {unknown[0]!r}: use office, person or fax")
        needle = normalise(query)
        found: list[Match] = []
        if "office" in kinds:
            found += self._filter(self.offices(office_code), needle)
        if "person" in kinds:
            found += self._filter(self.people(), needle)
        if "fax" in kinds:
            found += self._filter(self.fax_numbers(office_code), needle, digits=True)
        if not needle:
            found = [m for m in found if m.recent] if any(m.recent for m in found) else found
        # Exact and prefix hits first, then the recipients the office writes to most.
        found.sort(key=lambda m: (not _starts(m, needle), -m.recent, m.kind, m.kana or m.label))
        return found[:limit]

    @staticmethod
    def _filter(matches: Iterable[Match], needle: str, digits: bool = False) -> list[Match]:
        if not needle:
            return list(matches)
        number = _digits(needle) if digits else ""
        return [m for m in matches if needle in _haystack(m) or (number and number in _digits(m.value))]

    def offices(self, office_code: str | None = None) -> list[Match]:
        """This node's offices and pinned peers' offices, with how often ``office_code`` sent to each."""
        counts = self._recent(office_code) if office_code else {}
        with self._db.read() as conn:
            rows = conn.execute(select(t.offices.c.code, t.offices.c.name, t.offices.c.kana)).all()
        found = [
            Match("office", f"{r.code}@{self._node_id}", r.name, self._organisation, r.kana or "",
                  counts.get(f"{r.code}@{self._node_id}", 0))
            for r in rows
        ]
        for entry in self._remote_entries():
            found.append(Match("office", entry.address, entry.name, entry.organisation or entry.address.split("@")[1],
                               entry.kana or "", counts.get(entry.address, 0)))
        return found

    def people(self) -> list[Match]:
        """Active users of this node: login, name, kana, office."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(t.users.c.login, t.users.c.display_name, t.users.c.kana, t.offices.c.name.label("office"))
                .join(t.offices, t.offices.c.id == t.users.c.office_id)
                .where(t.users.c.active.is_(True))
            ).all()
        return [Match("person", r.login, r.display_name, r.office, r.kana or "") for r in rows]

    def fax_numbers(self, office_code: str) -> list[Match]:
        """The office's fax address book, then the fax numbers of offices (this node's and peers')."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(fax_contacts.c.name, fax_contacts.c.kana, fax_contacts.c.number)
                .join(t.offices, t.offices.c.id == fax_contacts.c.office_id)
                .where(t.offices.c.code == office_code)
            ).all()
            own = conn.execute(select(t.offices.c.name, t.offices.c.kana, t.offices.c.fax_number)
                               .where(t.offices.c.fax_number.is_not(None))).all()
        found = [Match("fax", r.number, r.name, r.number, r.kana or "", 1) for r in rows]
        found += [Match("fax", r.fax_number, r.name, f"{self._organisation} {r.fax_number}", r.kana or "")
                  for r in own]
        found += [Match("fax", e.fax_number, e.name, f"{e.organisation or ''} {e.fax_number}".strip(), e.kana or "")
                  for e in self._remote_entries() if e.fax_number]
        return found

    # --- resolving what was typed --------------------------------------------------

    def resolve_offices(self, typed: Sequence[str], office_code: str) -> list[str]:
        """Office addresses for typed entries: an address stays as it is; a code, name or kana becomes the one
        office it names. ValidationError naming the entry that matches no office or several."""
        offices = self.offices(office_code)
        return [self._resolve(entry, offices, "office", lambda e: "@" in e) for entry in typed]

    def resolve_people(self, typed: Sequence[str]) -> list[str]:
        """Logins for typed entries: a login stays; a name or kana becomes the one person it names."""
        people = self.people()
        logins = {m.value for m in people}
        return [self._resolve(entry, people, "person", lambda e: e in logins) for entry in typed]

    def resolve_fax(self, typed: str, office_code: str) -> str:
        """A fax number for a typed entry: digits stay; a name or kana from the address book becomes its number."""
        # Digits and ASCII only (03-3580-4111, 03-abc): a number as typed, checked as a number; names are
        # Japanese (民事局, ミンジ) or letters without digits.
        if _digits(typed) and (typed.isascii() or not normalise(typed).strip("0123456789()+")):
            return typed.strip()
        return self._resolve(typed, self.fax_numbers(office_code), "fax", lambda e: False)

    @staticmethod
    def _resolve(entry: str, candidates: Sequence[Match], kind: str, literal: Callable[[str], bool]) -> str:
        entry = entry.strip()
        if literal(entry):
            return entry
        needle = normalise(entry)
        exact = {m.value for m in candidates
                 if needle and needle in (normalise(m.label), normalise(m.kana), normalise(m.value.split("@")[0]))}
        if len(exact) == 1:
            return exact.pop()
        if not exact:
            partial = {m.value for m in candidates if needle and needle in _haystack(m)}
            if len(partial) == 1:
                return partial.pop()
            if not partial:
                raise UnknownEntryError(kind, entry, ())
            exact = partial
        raise UnknownEntryError(kind, entry, tuple(sorted(exact)))

    # --- helpers -----------------------------------------------------------------------

    def _remote_entries(self) -> list[RemoteEntry]:
        if self._remote is None:
            return []
        try:
            return list(self._remote())
        except InklessError:
            return []  # a peer's unreadable directory leaves its offices out; the rest still work

    def _recent(self, office_code: str) -> dict[str, int]:
        """How often ``office_code`` sent to each recipient, among its latest messages."""
        with self._db.read() as conn:
            latest = (
                select(messages.c.id)
                .join(t.offices, t.offices.c.id == messages.c.office_id)
                .where(t.offices.c.code == office_code)
                .order_by(messages.c.created_at.desc())
                .limit(200)
                .subquery()
            )
            rows = conn.execute(
                select(outbox.c.recipient, func.count().label("n"))
                .where(outbox.c.message_id.in_(select(latest.c.id)))
                .group_by(outbox.c.recipient)
                .order_by(func.count().desc())
                .limit(RECENT)
            ).all()
        return {r.recipient: int(r.n) for r in rows}


class UnknownEntryError(ValidationError):
    """A typed recipient, approver or fax entry names nothing, or several things."""

    def __init__(self, kind: str, entry: str, candidates: tuple[str, ...]) -> None:
        self.kind = kind
        self.entry = entry
        self.candidates = candidates
        what = {"office": "office", "person": "person", "fax": "fax number"}[kind]
        if candidates:
            super().__init__(f"{entry!r} matches several: {', '.join(candidates)}; choose one")
        else:
            super().__init__(f"no {what} matches {entry!r}")


def _haystack(m: Match) -> str:
    return normalise(f"{m.label} {m.kana} {m.value} {m.detail}")


def _starts(m: Match, needle: str) -> bool:
    return bool(needle) and any(normalise(x).startswith(needle) for x in (m.label, m.kana, m.value) if x)
