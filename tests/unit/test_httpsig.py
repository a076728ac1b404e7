"""RFC 9421 signatures: interoperability both ways with the http-message-signatures library used on its
own, the federation profile on top of it, and every way a signature must fail."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, MappingKeyResolver
from http_message_signatures import InvalidSignature as LibraryInvalidSignature
from http_message_signatures.algorithms import ECDSA_P256_SHA256

from inkless.federation import httpsig
from inkless.federation.httpsig import (
    HttpMessage,
    SignatureError,
    parse_signature,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)

URI = "http://127.0.0.1:8081/federation/v1/messages"
NOW = 1_800_000_000
NOT_VERIFIED = r"^the signature does not verify \(message altered, or signed by another key\)$"


# --- the library on its own: plain request / response objects as its docs describe --------------------


@dataclass
class Req:
    method: str
    url: str
    headers: dict[str, str]


@dataclass
class Resp:
    status_code: int
    headers: dict[str, str]
    request: Req


def _library_signer(key: ec.EllipticCurvePrivateKey, keyid: str) -> HTTPMessageSigner:
    return HTTPMessageSigner(signature_algorithm=ECDSA_P256_SHA256,
                             key_resolver=MappingKeyResolver(public_keys={}, private_keys={keyid: key}))


def _library_verifier(key: ec.EllipticCurvePublicKey, keyid: str) -> HTTPMessageVerifier:
    return HTTPMessageVerifier(signature_algorithm=ECDSA_P256_SHA256,
                               key_resolver=MappingKeyResolver(public_keys={keyid: key}, private_keys={}))


def test_content_digest_is_rfc9530_sha256() -> None:
    # RFC 9530 §B.2: sha-256 of {"hello": "world"}.
    assert httpsig.content_digest(b'{"hello": "world"}') == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


def test_library_signed_request_with_alg_before_nonce_and_expires_verifies_here() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = NOW
    req = Req("POST", URI, {"Inkless-Recipient": "records@npa"})
    _library_signer(key, "moj").sign(
        req, key_id="moj", label="sig1", created=datetime.fromtimestamp(now - 5, UTC),
        expires=datetime.fromtimestamp(now + 60, UTC), nonce="n-0123456789", tag=httpsig.TAG,
        covered_component_ids=("@method", "@target-uri", "inkless-recipient"), body=b"envelope",
    )
    sig_input = req.headers["Signature-Input"]
    # The library's parameter order is not ours: alg before nonce, and expires and tag present.
    assert sig_input.index(";alg=") < sig_input.index(";nonce=") and ";expires=" in sig_input and ";tag=" in sig_input
    received = parse_signature(req.headers)
    assert received.params.expires == now + 60 and received.params.tag == httpsig.TAG
    verify_request(received, "POST", URI, req.headers, b"envelope", key.public_key(), now, ("inkless-recipient",))
    # The signed expiry is enforced against our clock.
    with pytest.raises(SignatureError, match="the signature expired 1 s ago"):
        verify_request(received, "POST", URI, req.headers, b"envelope", key.public_key(), now + 61)


def test_library_signed_request_without_tag_verifies_here() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    req = Req("POST", URI, {})
    _library_signer(key, "moj").sign(req, key_id="moj", label="sig1", created=datetime.fromtimestamp(NOW, UTC),
                                     nonce="abc", covered_component_ids=("@target-uri", "@method"), body=b"e")
    verify_request(parse_signature(req.headers), "POST", URI, req.headers, b"e", key.public_key(), NOW)


def test_library_signed_response_bound_to_our_request_verifies_here() -> None:
    node_a = ec.generate_private_key(ec.SECP256R1())
    node_b = ec.generate_private_key(ec.SECP256R1())
    request = HttpMessage(headers=sign_request("POST", URI, b"envelope", node_a, "moj", NOW), method="POST",
                          target_uri=URI)
    resp = Resp(200, {}, Req("POST", URI, dict(request.headers)))
    _library_signer(node_b, "npa").sign(
        resp, key_id="npa", label="sig1", created=datetime.fromtimestamp(NOW, UTC),
        covered_component_ids=('"signature";req;key="sig1"', "@status", '"@target-uri";req', '"@method";req'),
        body=b"receipt",
    )
    assert '"signature";req;key="sig1"' in resp.headers["Signature-Input"]
    received = parse_signature(resp.headers)
    verify_response(received, 200, resp.headers, b"receipt", request, node_b.public_key(), NOW)
    # Bound to that request's signature: another signed request is not answered by it.
    other = HttpMessage(headers=sign_request("POST", URI, b"envelope", node_a, "moj", NOW), method="POST",
                        target_uri=URI)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(received, 200, resp.headers, b"receipt", other, node_b.public_key(), NOW)


def test_our_request_and_response_verify_in_the_library() -> None:
    node_a = ec.generate_private_key(ec.SECP256R1())
    node_b = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())  # the library checks against the host clock
    covered = {"Inkless-Sender": "civil-affairs@moj"}
    headers = sign_request("POST", URI, b"envelope", node_a, "moj", now, covered=covered)
    req = Req("POST", URI, dict(headers))
    [result] = _library_verifier(node_a.public_key(), "moj").verify(
        req, expect_tag=httpsig.TAG, expect_label="sig1", body=b"envelope",
        require_components=("@method", "@target-uri", "content-digest", "inkless-sender"),
    )
    assert result.parameters["keyid"] == "moj" and result.nonce and result.body == b"envelope"
    answer = sign_response(200, b"receipt", HttpMessage(headers, "POST", URI), node_b, "npa", now)
    [checked] = _library_verifier(node_b.public_key(), "npa").verify(
        Resp(200, answer, req), expect_tag=httpsig.TAG, expect_label="sig1", body=b"receipt",
        require_components=('"signature";req;key="sig1"', "@status", '"@method";req', '"@target-uri";req'),
    )
    assert checked.covered_components['"@status"'] == "200"
    # And the library refuses ours when altered, as it should.
    with pytest.raises(LibraryInvalidSignature) as refused:
        _library_verifier(node_a.public_key(), "moj").verify(Req("PUT", URI, dict(headers)), expect_tag=httpsig.TAG,
                                                            expect_label="sig1")
    assert isinstance(refused.value.__cause__, CryptoInvalidSignature)


# --- the profile --------------------------------------------------------------------------------------


def _signed(key: ec.EllipticCurvePrivateKey, body: bytes = b"envelope", created: int = NOW) -> dict[str, str]:
    return sign_request("POST", URI, body, key, "moj", created)


def test_request_round_trip_and_structure() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    headers = _signed(key)
    assert headers["Signature-Input"].startswith('sig1=("@method" "@target-uri" "content-digest");created=')
    assert 'keyid="moj"' in headers["Signature-Input"] and 'alg="ecdsa-p256-sha256"' in headers["Signature-Input"]
    received = parse_signature(headers)
    assert received.params.keyid == "moj" and received.params.nonce and len(received.value) == 64
    verify_request(received, "POST", URI, headers, b"envelope", key.public_key(), NOW + 10)
    # Two signatures of the same request never share a nonce.
    assert parse_signature(_signed(key)).params.nonce != received.params.nonce


def _replace_param(headers: dict[str, str], old: str, new: str) -> dict[str, str]:
    assert old in headers["Signature-Input"]
    return {**headers, "Signature-Input": headers["Signature-Input"].replace(old, new)}


def test_every_tampering_is_refused_with_its_reason() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    good = _signed(key)
    nonce = parse_signature(good).params.nonce
    cases: list[tuple[str, dict[str, object], str]] = [
        ("body", {"body": b"envelopf"}, r"^the body does not match its Content-Digest \(altered in transit\)$"),
        ("method", {"method": "PUT"}, NOT_VERIFIED),
        ("uri", {"uri": URI.replace("messages", "directory")}, "does not verify"),
        ("host", {"uri": URI.replace("8081", "8082")}, "does not verify"),
        ("key", {"key": other.public_key()}, "does not verify"),
        ("old", {"now": NOW + 301}, "stale: created 301 s ago"),
        ("future", {"now": NOW - 301}, "stale: created 301 s in the future"),
        ("digest swapped", {"headers": {**good, "Content-Digest": httpsig.content_digest(b"x")}, "body": b"x"},
         "does not verify"),
        ("no digest", {"headers": {k: v for k, v in good.items() if k != "Content-Digest"}},
         r"^no Content-Digest header$"),
        ("unsigned", {"headers": {"Content-Digest": good["Content-Digest"]}},
         r"^the message is not signed \(no Signature-Input / Signature headers\)$"),
        ("garbage input", {"headers": {**good, "Signature-Input": "sig1=(((("}}, "malformed structured header"),
        ("garbage value", {"headers": {**good, "Signature": "sig1=:!!!:"}}, "malformed structured header"),
        ("short", {"headers": {**good, "Signature": "sig1=:" + base64.b64encode(b"x" * 10).decode() + ":"}},
         "64 bytes, not 10"),
        ("wrong label", {"headers": {**good, "Signature": good["Signature"].replace("sig1", "sig2")}},
         "no signature labelled 'sig1'"),
        ("alg", {"headers": _replace_param(good, "ecdsa-p256-sha256", "hmac-sha256")},
         "unsupported signature algorithm 'hmac-sha256'"),
        ("fewer components", {"headers": _replace_param(good, ' "content-digest"', "")},
         'does not cover "content-digest"'),
        ("no nonce", {"headers": _replace_param(good, f';nonce="{nonce}"', "")}, r"^the signature has no 'nonce'$"),
        ("no keyid", {"headers": _replace_param(good, ';keyid="moj"', "")}, r"^the signature has no 'keyid'$"),
        ("no created", {"headers": _replace_param(good, f";created={NOW}", "")},
         r"^the signature has no 'created' time$"),
        ("foreign tag", {"headers": _replace_param(good, f'tag="{httpsig.TAG}"', 'tag="other-app"')},
         "not a federation signature"),
        ("expired", {"headers": _replace_param(good, f";created={NOW}", f";created={NOW};expires={NOW - 1}")},
         "expired 1 s ago"),
        ("extra parameter", {"headers": _replace_param(good, ';keyid="moj"', ';keyid="moj";foo="bar"')},
         "Unexpected signature metadata parameter"),
    ]
    for name, change, reason in cases:
        headers = change.get("headers", good)
        assert isinstance(headers, dict)
        with pytest.raises(SignatureError, match=reason):
            received = parse_signature(headers)
            verify_request(
                received,
                str(change.get("method", "POST")),
                str(change.get("uri", URI)),
                headers,
                change.get("body", b"envelope"),  # type: ignore[arg-type]
                change.get("key", key.public_key()),  # type: ignore[arg-type]
                int(change.get("now", NOW)),  # type: ignore[call-overload]
            )
        print("refused:", name)


@pytest.mark.parametrize(
    ("signature_input", "signature", "reason"),
    [
        ('sig1=:AAE=:', "sig1=:AAE=:", "Signature-Input member 'sig1' is not an inner list"),
        ('sig1=("@method");created=1', 'sig1=("x")', "Signature member 'sig1' is not a byte sequence"),
        ('sig1=(1 "@method");created=1', "sig1=:AAE=:", "^covered components must be strings$"),
        ('sig1=("signature";key=1);created=1', "sig1=:AAE=:", "^the key parameter must be a string$"),
        ('sig1=("@method");created="yesterday"', "sig1=:AAE=:", "parameter 'created' has the wrong type"),
        ('sig1=("@method");created=1;keyid=7', "sig1=:AAE=:", "parameter 'keyid' has the wrong type"),
        ('sig1=("@method");created=?1', "sig1=:AAE=:", "parameter 'created' has the wrong type"),
        ('sig1=("@method");nonce=:AAE=:', "sig1=:AAE=:", "parameter 'nonce' has the wrong type"),
        ('sig1=("@method");expires="soon"', "sig1=:AAE=:", "parameter 'expires' has the wrong type"),
        ('sig1=("@method" "x";created=1', "sig1=:AAE=:", "malformed structured header Signature-Input"),
        ('sig1=("@method")', "sig1=:AAE", "malformed structured header Signature"),
        ('sig1=("@method")', "", "not signed"),
    ],
)
def test_the_signature_parser_refuses_with_its_reason(signature_input: str, signature: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        parse_signature({"Signature-Input": signature_input, "Signature": signature})


def test_response_is_bound_to_the_request_signature() -> None:
    node_a = ec.generate_private_key(ec.SECP256R1())
    node_b = ec.generate_private_key(ec.SECP256R1())
    req_headers = _signed(node_a)
    request = HttpMessage(headers=req_headers, method="POST", target_uri=URI)
    resp_headers = sign_response(200, b"receipt", request, node_b, "npa", NOW)
    assert '"signature";req;key="sig1"' in resp_headers["Signature-Input"]
    received = parse_signature(resp_headers)
    verify_response(received, 200, resp_headers, b"receipt", request, node_b.public_key(), NOW)
    # The same response does not answer another request (another nonce, another signature).
    other = HttpMessage(headers=_signed(node_a), method="POST", target_uri=URI)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(received, 200, resp_headers, b"receipt", other, node_b.public_key(), NOW)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(received, 201, resp_headers, b"receipt", request, node_b.public_key(), NOW)
    with pytest.raises(SignatureError, match="does not match its Content-Digest"):
        verify_response(received, 200, resp_headers, b"receipu", request, node_b.public_key(), NOW)
    # A response that leaves out the binding is refused for a signed request.
    unbound = sign_response(200, b"receipt", HttpMessage({}, "POST", URI), node_b, "npa", NOW)
    with pytest.raises(SignatureError, match='does not cover "signature";req;key="sig1"'):
        verify_response(parse_signature(unbound), 200, unbound, b"receipt", request, node_b.public_key(), NOW)
    # An unsigned request (GET /node) still gets a response bound to its method and URI.
    plain = HttpMessage(headers={}, method="GET", target_uri=URI)
    plain_headers = sign_response(200, b"{}", plain, node_b, "npa", NOW)
    verify_response(parse_signature(plain_headers), 200, plain_headers, b"{}", plain, node_b.public_key(), NOW)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(parse_signature(plain_headers), 200, plain_headers, b"{}",
                        HttpMessage(headers={}, method="GET", target_uri=URI + "x"), node_b.public_key(), NOW)


def test_covered_headers_are_signed_and_required() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    covered = {"Inkless-Sender": "civil-affairs@moj", "Inkless-Recipient": "records@npa"}
    headers = sign_request("POST", URI, b"e", key, "moj", NOW, covered=covered)
    assert headers["Inkless-Sender"] == "civil-affairs@moj"
    names = list(covered)
    verify_request(parse_signature(headers), "POST", URI, headers, b"e", key.public_key(), NOW, names)
    forged = {**headers, "Inkless-Recipient": "secret@npa"}
    with pytest.raises(SignatureError, match="does not verify"):
        verify_request(parse_signature(forged), "POST", URI, forged, b"e", key.public_key(), NOW, names)
    plain = _signed(key, b"e")
    with pytest.raises(SignatureError, match='does not cover "inkless-sender", "inkless-recipient"'):
        verify_request(parse_signature(plain), "POST", URI, plain, b"e", key.public_key(), NOW, names)


def test_raw_ecdsa_refusals() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = httpsig.sign_ecdsa(b"data", key)
    httpsig.verify_ecdsa(b"data", signature, key.public_key())
    with pytest.raises(SignatureError, match=NOT_VERIFIED):
        httpsig.verify_ecdsa(b"datb", signature, key.public_key())
    with pytest.raises(SignatureError, match="64 bytes, not 63"):
        httpsig.verify_ecdsa(b"data", signature[1:], key.public_key())
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(SignatureError, match=r"^the signer's key is not an ECDSA P-256 key$"):
        httpsig.verify_ecdsa(b"data", signature, p384.public_key())


def test_the_clock_window_and_expiry_are_inclusive_and_our_expiry_is_signed() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    good = _signed(key)
    for now in (NOW - 300, NOW + 300):  # exactly MAX_SKEW_SECONDS either way still holds
        verify_request(parse_signature(good), "POST", URI, good, b"envelope", key.public_key(), now)
    expiring = sign_request("POST", URI, b"envelope", key, "moj", NOW, expires=NOW + 60)
    received = parse_signature(expiring)
    assert received.params.expires == NOW + 60
    verify_request(received, "POST", URI, expiring, b"envelope", key.public_key(), NOW + 60)  # valid until then
    with pytest.raises(SignatureError, match=r"^the signature expired 1 s ago$"):
        verify_request(received, "POST", URI, expiring, b"envelope", key.public_key(), NOW + 61)


def test_a_key_that_is_not_p256_and_a_message_without_its_request_line_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    good = _signed(key)
    with pytest.raises(SignatureError, match=r"^the signer's key is not an ECDSA P-256 key$"):
        verify_request(parse_signature(good), "POST", URI, good, b"envelope", p384.public_key(), NOW)
    for request in (HttpMessage(headers={}, method=None, target_uri=URI), HttpMessage(headers={}, method="GET")):
        with pytest.raises(SignatureError,
                           match=r"^a request needs its method and target URI to be signed or verified$"):
            sign_response(200, b"{}", request, key, "npa", NOW)
    with pytest.raises(SignatureError, match=r"^the Content-Digest is not acceptable: "):
        verify_request(parse_signature(good), "POST", URI, {**good, "Content-Digest": "md5=:AAAA:"}, b"envelope",
                       key.public_key(), NOW)


def test_a_request_with_a_garbled_signature_still_gets_a_signed_answer() -> None:
    """The 401 that tells a caller its signature is malformed is signed, bound to the request line only."""
    node_b = ec.generate_private_key(ec.SECP256R1())
    request = HttpMessage(headers={"Signature-Input": 'sig1=("@method")', "Signature": "sig1=:!!!:"},
                          method="POST", target_uri=URI)
    headers = sign_response(401, b"refused", request, node_b, "npa", NOW)
    assert '"signature";req' not in headers["Signature-Input"]
    verify_response(parse_signature(headers), 401, headers, b"refused", request, node_b.public_key(), NOW)


def test_a_flagged_component_does_not_stand_in_for_the_required_one() -> None:
    """Covering "content-digest";sf is not covering "content-digest" (RFC 9421 §2.1: another component)."""
    key = ec.generate_private_key(ec.SECP256R1())
    req = Req("POST", URI, {})
    _library_signer(key, "moj").sign(
        req, key_id="moj", label="sig1", created=datetime.fromtimestamp(NOW, UTC), nonce="n-1", tag=httpsig.TAG,
        covered_component_ids=("@method", "@target-uri", '"content-digest";sf'), body=b"envelope",
    )
    with pytest.raises(SignatureError, match=r'^the signature does not cover "content-digest"$'):
        verify_request(parse_signature(req.headers), "POST", URI, req.headers, b"envelope", key.public_key(), NOW)


def test_a_second_signature_on_the_request_does_not_stand_in_for_ours() -> None:
    """Another signature, even with the federation tag, is not ours: ours is the one labelled sig1."""
    key = ec.generate_private_key(ec.SECP256R1())
    proxy = ec.generate_private_key(ec.SECP256R1())
    ours = sign_request("POST", URI, b"envelope", key, "moj", NOW)
    theirs = Req("POST", URI, {})
    _library_signer(proxy, "moj").sign(
        theirs, key_id="moj", label="edge", created=datetime.fromtimestamp(NOW, UTC), nonce="n-2", tag=httpsig.TAG,
        covered_component_ids=("@method", "@target-uri", "content-digest"), body=b"envelope",
    )
    both = {**ours, "Signature-Input": theirs.headers["Signature-Input"] + ", " + ours["Signature-Input"],
            "Signature": theirs.headers["Signature"] + ", " + ours["Signature"]}
    received = parse_signature(both)
    assert received.label == "sig1"
    verify_request(received, "POST", URI, both, b"envelope", key.public_key(), NOW)
    # The proxy's key is not the peer's: its signature is never the one checked.
    with pytest.raises(SignatureError, match=NOT_VERIFIED):
        verify_request(received, "POST", URI, both, b"envelope", proxy.public_key(), NOW)


def test_what_cannot_be_signed_is_refused_with_its_reason() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError, match=r"^the request cannot be signed: .*newline"):
        sign_request("POST", URI, b"e", key, "moj", NOW, covered={"Inkless-Subject": "a\r\nInkless-Recipient: x"})
    with pytest.raises(SignatureError, match=r"^the response cannot be signed: .*URL"):
        sign_response(200, b"{}", HttpMessage(headers={}, method="GET", target_uri=URI + "/é"), key, "npa", NOW)
