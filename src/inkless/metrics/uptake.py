"""Who still faxes, and did they move: whether a remote fax number was invited to the digital path, and
whether it has since used the intake window or an e-mail pickup.

The matching rule (the data has no account behind a fax number, so it goes by what people typed):

- numbers compare as fax routing compares them: digits only, Japan's +81 written as 0
  (``03-5555-0001`` is ``+81 3 5555 0001``);
- **invited**: the node faxed that number an invitation (招待FAX, any office); the first one counts;
- **the e-mail addresses of a number**: those given on an intake submission that came by the link of
  one of its invitation faxes or named the number as its phone number, and those of e-mail pickups a
  clerk sent with the number as the mobile for the code;
- **moved**: an intake submission came by the link of one of its invitation faxes (``/i/OFFICE?via=CODE``,
  printed and as QR code on the invitation letter); or, at or after the first invitation — for a
  number never invited, at or after the start of the period shown — an intake submission named the
  number as phone or came from one of its addresses, or the recipient of an e-mail pickup to that
  mobile number or to one of its addresses opened it. The earliest such use is shown, with
  ``intake`` or ``pickup``.

Intake submissions keep keyed digests of the phone number and address, never the clear text
(:mod:`inkless.intake.contacts`); submissions made before the digests were kept match nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from inkless.db.tables_intake import fax_invitations, intake_submissions
from inkless.db.tables_pickup import pickups
from inkless.fax.routing import normalise_number
from inkless.intake.contacts import ContactDigests
from inkless.pki.keystore import SecretBox

INTAKE = "intake"
PICKUP = "pickup"


@dataclass(frozen=True)
class Uptake:
    """What a remote number did: invited when, moved to the digital path when and how."""

    invited_at: datetime | None
    moved_at: datetime | None
    moved_via: str | None


class RemoteUptake:
    """Looks up the uptake of remote fax numbers on one node (its digests need the node's master key)."""

    def __init__(self, box: SecretBox) -> None:
        self.digests = ContactDigests(box)

    def __call__(self, conn: Connection, numbers: Sequence[str], since: datetime) -> dict[str, Uptake]:
        """Uptake per number as given (numbers without digits are left out)."""
        wanted = {n: normalise_number(n) for n in numbers}
        wanted = {n: v for n, v in wanted.items() if v.strip("+")}
        if not wanted:
            return {}
        invited: dict[str, datetime] = {}
        invitations: dict[int, str] = {}  # invitation id -> number, for the numbers asked about
        inv = fax_invitations.c
        for row in conn.execute(select(inv.id, inv.number, inv.invited_at)):
            key = normalise_number(row.number)
            if key not in wanted.values():
                continue
            invitations[row.id] = key
            if key not in invited or row.invited_at < invited[key]:
                invited[key] = row.invited_at
        phones = {v: self.digests.phone(v) for v in set(wanted.values())}
        s = intake_submissions.c
        by_phone = conn.execute(select(s.phone_digest, s.email_digest, s.received_at).where(
            s.phone_digest.in_([d for d in phones.values() if d]))).all()
        by_link = conn.execute(select(s.invitation_id, s.email_digest, s.received_at).where(
            s.invitation_id.in_(list(invitations)))).all() if invitations else []
        p = pickups.c
        with_mobile = conn.execute(select(p.mobile, p.recipient, p.opened_at).where(p.mobile.is_not(None))).all()
        # The addresses (as digests) that go with each number.
        addresses: dict[str, set[str]] = defaultdict(set)
        for sub in by_phone:
            for number, digest in phones.items():
                if sub.phone_digest == digest and sub.email_digest:
                    addresses[number].add(sub.email_digest)
        for link in by_link:
            if link.email_digest:
                addresses[invitations[link.invitation_id]].add(link.email_digest)
        for row1 in with_mobile:
            mobile = normalise_number(row1.mobile)
            address = self.digests.email(row1.recipient)
            if mobile in phones and address:
                addresses[mobile].add(address)
        earliest = min(invited.get(v, since) for v in phones)
        linked = set().union(*addresses.values()) if addresses else set()
        by_address = conn.execute(select(s.phone_digest, s.email_digest, s.received_at).where(
            s.email_digest.in_(linked), s.received_at >= earliest)).all() if linked else []
        opened = conn.execute(select(p.mobile, p.recipient, p.opened_at).where(
            p.opened_at.is_not(None), p.opened_at >= earliest)).all()
        out: dict[str, Uptake] = {}
        for given, number in wanted.items():
            since_when = invited.get(number, since)
            uses: list[tuple[datetime, str]] = []
            mine = addresses.get(number, set())
            for row2 in [*by_phone, *by_address]:
                matches = row2.phone_digest == phones[number] or row2.email_digest in mine
                if matches and row2.received_at >= since_when:
                    uses.append((row2.received_at, INTAKE))
            for row4 in by_link:
                if invitations[row4.invitation_id] == number:
                    uses.append((row4.received_at, INTAKE))  # came by the link of its invitation fax
            for row3 in opened:
                if row3.opened_at >= since_when and (
                        normalise_number(row3.mobile) == number or self.digests.email(row3.recipient) in mine):
                    uses.append((row3.opened_at, PICKUP))
            first = min(uses) if uses else None
            out[given] = Uptake(invited.get(number), first[0] if first else None, first[1] if first else None)
        return out
