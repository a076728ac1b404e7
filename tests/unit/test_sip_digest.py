"""Digest authentication: the RFC 7616 §3.9.1 vectors (the algorithm RFC 8760 brings to SIP), MD5 and SHA-256."""

from __future__ import annotations

import pytest

from inkless.errors import SipMessageError
from inkless.fax.sip import digest

NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc_vectors(algorithm: str, expected: str) -> None:
    challenge = digest.Challenge.parse(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{NONCE}", opaque="{OPAQUE}"')
    assert challenge.supported
    value = digest.response(challenge, username="Mufasa", password="Circle of Life", method="GET",
                            uri="/dir/index.html", nc=1, cnonce=CNONCE)
    assert value == expected
    header = digest.authorization(challenge, username="Mufasa", password="Circle of Life", method="GET",
                                  uri="/dir/index.html", nc=1, cnonce=CNONCE)
    assert f'response="{expected}"' in header and "nc=00000001" in header and f'opaque="{OPAQUE}"' in header
    assert f"algorithm={algorithm}" in header and "qop=auth," in header


def test_without_qop_rfc2069_style() -> None:
    challenge = digest.Challenge.parse('Digest realm="r", nonce="n"')
    assert digest.response(challenge, username="u", password="p", method="REGISTER", uri="sip:h") == \
        __import__("hashlib").md5(b"%s:n:%s" % (
            __import__("hashlib").md5(b"u:r:p").hexdigest().encode(),
            __import__("hashlib").md5(b"REGISTER:sip:h").hexdigest().encode())).hexdigest()


def test_sha256_is_chosen_over_md5_and_unknown_algorithms_are_skipped() -> None:
    chosen = digest.choose(['Digest realm="r", nonce="1", algorithm=MD5',
                            'Digest realm="r", nonce="2", algorithm=SHA-256',
                            'Digest realm="r", nonce="3", algorithm=SHA-512-256'])
    assert chosen is not None and chosen.nonce == "2"
    assert digest.choose(['Digest realm="r", nonce="3", algorithm=SHA-512-256']) is None
    assert digest.choose(['Digest realm="r", nonce="4", qop="auth-int"']) is None
    assert digest.choose(["Basic realm=x", "Digest garbage"]) is None


def test_a_challenge_without_nonce_is_refused() -> None:
    with pytest.raises(SipMessageError):
        digest.Challenge.parse('Digest realm="r"')
