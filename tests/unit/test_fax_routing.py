"""Inbound fax routing and the junk-fax block list: which office gets a fax, and which calls are dropped."""

from __future__ import annotations

import pytest

from inkless.errors import ValidationError
from inkless.fax.routing import (
    BLOCK_KINDS,
    RULE_KINDS,
    BlockEntry,
    RoutingRule,
    blocked_by,
    check_pattern,
    normalise_number,
    route,
)

OFFICES = [("civil-affairs", "03-3580-4111"), ("criminal-affairs", "03-3580-4112"), ("secretariat", None)]


def _route(rules: list[RoutingRule], did: str | None = None, sub: str | None = None, tsi: str | None = None,
           cid: str | None = None) -> tuple[str | None, str | None]:
    decision = route(OFFICES, rules, called_number=did, sub_address=sub, remote_ident=tsi, calling_number=cid)
    return decision.office_code, decision.routed_by


def test_numbers_compare_as_digits_with_japans_country_code_as_trunk_prefix() -> None:
    assert normalise_number("03-3580-4111") == "0335804111"
    assert normalise_number("+81 3 3580 4111") == "0335804111"
    assert normalise_number("+1 555 0100") == "+15550100"
    assert normalise_number(None) == ""


def test_the_called_number_finds_the_office_that_publishes_it() -> None:
    assert _route([], did="0335804112") == ("criminal-affairs", "did")
    assert _route([], did="+81-3-3580-4111") == ("civil-affairs", "did")
    # Nothing matches: unroutable (the caller puts it in the administrators' queue).
    assert _route([], did="0399999999") == (None, None)
    assert _route([], did=None, cid="0311112222") == (None, None)


def test_explicit_rules_come_first_in_priority_order() -> None:
    rules = [
        RoutingRule(1, "cid", r"0466.*", "secretariat", 50),
        RoutingRule(2, "subaddress", "20", "criminal-affairs", 10),
        RoutingRule(3, "tsi", r"KOBE CITY.*", "secretariat", 20),
        RoutingRule(4, "did", "03-3580-4000", "civil-affairs", 100),
    ]
    # A sub-address splits one shared number, overriding the office that publishes it.
    assert _route(rules, did="0335804111", sub="20") == ("criminal-affairs", "rule:2")
    assert _route(rules, did="0335804111", sub="21") == ("civil-affairs", "did")
    # TSI rules match the whole trimmed station id, case-insensitively.
    assert _route(rules, tsi="  kobe city hall  ") == ("secretariat", "rule:3")
    assert _route(rules, tsi="OSAKA KOBE CITY") == (None, None)
    assert _route(rules, cid="0466-12-3456") == ("secretariat", "rule:1")
    assert _route(rules, did="0335804000") == ("civil-affairs", "rule:4")
    # Equal priorities: the older rule (lower id) wins.
    tie = [RoutingRule(9, "cid", r"06.*", "civil-affairs", 5), RoutingRule(8, "cid", r"061.*", "secretariat", 5)]
    assert _route(tie, cid="0612345678") == ("secretariat", "rule:8")


def test_block_list_by_calling_number_and_station_id() -> None:
    blocks = [BlockEntry(1, "cid", "0120-444-444", "junk"), BlockEntry(2, "tsi", r".*SALE.*", None)]
    assert blocked_by(blocks, "0120444444", None) == blocks[0]
    assert blocked_by(blocks, "+81 120 444 444", "") == blocks[0]
    assert blocked_by(blocks, "0312345678", "BIG sale today") == blocks[1]
    assert blocked_by(blocks, "0312345678", "KOBE CITY") is None
    assert blocked_by(blocks, None, None) is None


def test_bad_patterns_are_refused_with_a_reason() -> None:
    cases = [
        ("fax", "0311112222", RULE_KINDS, "kind"),
        ("did", "", RULE_KINDS, "1-128"),
        ("did", "x" * 200, RULE_KINDS, "1-128"),
        ("did", "office", RULE_KINDS, "telephone number"),
        ("tsi", "(unclosed", RULE_KINDS, "regular expression"),
        ("cid", "[", BLOCK_KINDS, "regular expression"),
        ("subaddress", "a\nb", RULE_KINDS, "control"),
        ("did", "0311112222", BLOCK_KINDS, "kind"),
    ]
    for kind, pattern, kinds, message in cases:
        with pytest.raises(ValidationError, match=message):
            check_pattern(kind, pattern, kinds)
    assert check_pattern("did", " 03-1111-2222 ", RULE_KINDS) == "03-1111-2222"
