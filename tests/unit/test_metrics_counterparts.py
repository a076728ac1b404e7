"""Counterparts as the metrics compare them: fax numbers by digits (+81 as 0), addresses without regard to case;
the intake window's keyed digests match only under the node key that made them."""

from __future__ import annotations

import os

from inkless.intake.contacts import ContactDigests
from inkless.metrics.memory import address_counterpart, fax_counterpart
from inkless.pki.keystore import SecretBox


def test_fax_numbers_and_addresses_compare_as_people_write_them() -> None:
    assert fax_counterpart("03-5555-0001") == fax_counterpart("+81 3 5555 0001") == "fax:0355550001"
    assert fax_counterpart("(03) 5555-0001") == "fax:0355550001"
    assert fax_counterpart("+1 202 555 0100") == "fax:+12025550100"
    assert fax_counterpart("") is None and fax_counterpart("  -  ") is None and fax_counterpart(None) is None
    assert address_counterpart("Criminal-Affairs@MOJ") == address_counterpart(" criminal-affairs@moj ")
    assert address_counterpart("") is None


def test_contact_digests_are_keyed_by_the_node() -> None:
    box = SecretBox(os.urandom(32))
    digests = ContactDigests(box)
    assert digests.phone("0798-11-2222") == digests.phone("+81 798 11 2222") == digests.phone("0798112222")
    assert digests.phone("0798-11-2222") != digests.phone("0798-11-2223")
    assert digests.email("Taro@Example.JP") == digests.email("taro@example.jp")
    assert digests.email("taro@example.jp") != digests.phone("taro@example.jp")
    assert digests.phone("") is None and digests.email("  ") is None
    # Another node (another master key) makes other digests: nothing can be matched across nodes.
    assert ContactDigests(SecretBox(os.urandom(32))).phone("0798-11-2222") != digests.phone("0798-11-2222")
    digest = digests.phone("0798-11-2222")
    assert digest is not None and len(digest) == 64 and "0798" not in digest
