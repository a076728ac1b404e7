"""RFC 9421 signatures: the signature base against the RFC's examples, and every way a signature must fail."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from inkless.delivery import httpsig
from inkless.delivery.httpsig import (
    Component,
    HttpMessage,
    SignatureError,
    SignatureParams,
    parse_signature,
    sign_request,
    sign_response,
    signature_base,
    verify_request,
    verify_response,
)

# RFC 9421 Appendix B.1.3, test-key-ecc-p256.
RFC_P256_KEY = b"""-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIFKbhfNZfpDsW43+0+JjUr9K+bTeuxopu653+hBaXGA7oAoGCCqGSM49
AwEHoUQDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lfw0EkjqF7xB4FivAxzic30tMM
4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END EC PRIVATE KEY-----
"""
REQ_DIGEST = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+"
    "TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
RESP_DIGEST = (
    "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41"
    "QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"
)
RFC_SIGNATURE = (
    "sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpa"
    "CLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:"
)
RFC_REQUEST = HttpMessage(
    headers={
        "Host": "example.com",
        "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "Content-Type": "application/json",
        "Content-Digest": REQ_DIGEST,
        "Content-Length": "18",
    },
    method="POST",
    target_uri="https://example.com/foo?param=Value&Pet=dog",
)
RFC_RESPONSE_HEADERS = {
    "Date": "Tue, 20 Apr 2021 02:07:56 GMT",
    "Content-Type": "application/json",
    "Content-Digest": RESP_DIGEST,
    "Content-Length": "23",
}
URI = "http://127.0.0.1:8081/federation/v1/messages"
NOW = 1_800_000_000


def test_signature_base_of_rfc_example_b21_minimal() -> None:
    params = SignatureParams(
        tuple(Component(n) for n in ("@method", "@authority", "@path", "@query", "content-type")),
        created=1618884473, keyid="test-key-rsa-pss",
    )
    assert signature_base(RFC_REQUEST, params).decode() == (
        '"@method": POST\n'
        '"@authority": example.com\n'
        '"@path": /foo\n'
        '"@query": ?param=Value&Pet=dog\n'
        '"content-type": application/json\n'
        '"@signature-params": ("@method" "@authority" "@path" "@query" "content-type");'
        'created=1618884473;keyid="test-key-rsa-pss"'
    )


def test_rfc_example_b24_response_signature_verifies() -> None:
    # The RFC's own ECDSA signature over a response: our base must be byte-identical for it to verify.
    headers = {
        **RFC_RESPONSE_HEADERS,
        "Signature-Input": 'sig-b24=("@status" "content-type" "content-digest" "content-length")'
        ';created=1618884473;keyid="test-key-ecc-p256"',
        "Signature": RFC_SIGNATURE,
    }
    received = parse_signature(headers, "sig-b24")
    key = load_pem_private_key(RFC_P256_KEY, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    base = signature_base(HttpMessage(headers=headers, status=200), received.params)
    httpsig.verify_ecdsa(base, received.value, key.public_key())
    with pytest.raises(SignatureError, match="does not verify"):
        httpsig.verify_ecdsa(base.replace(b"200", b"201"), received.value, key.public_key())


def test_signature_base_with_request_components_as_in_b24() -> None:
    params = SignatureParams(
        (
            Component("@status"), Component("content-digest"), Component("content-type"),
            Component("@authority", req=True), Component("@method", req=True), Component("@path", req=True),
            Component("content-digest", req=True),
        ),
        created=1618884479, keyid="test-key-ecc-p256",
    )
    response = HttpMessage(headers=RFC_RESPONSE_HEADERS, status=200, request=RFC_REQUEST)
    assert signature_base(response, params).decode().splitlines() == [
        '"@status": 200',
        '"content-digest": ' + RESP_DIGEST,
        '"content-type": application/json',
        '"@authority";req: example.com',
        '"@method";req: POST',
        '"@path";req: /foo',
        '"content-digest";req: ' + REQ_DIGEST,
        '"@signature-params": ("@status" "content-digest" "content-type" "@authority";req "@method";req '
        '"@path";req "content-digest";req);created=1618884479;keyid="test-key-ecc-p256"',
    ]


def test_content_digest_is_rfc9530_sha256() -> None:
    # RFC 9530 §B.2: sha-256 of {"hello": "world"}.
    assert httpsig.content_digest(b'{"hello": "world"}') == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


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


def test_every_tampering_is_refused_with_its_reason() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    good = _signed(key)
    cases: list[tuple[str, dict[str, object], str]] = [
        ("body", {"body": b"envelopf"}, "does not match its Content-Digest"),
        ("method", {"method": "PUT"}, "does not verify"),
        ("uri", {"uri": URI.replace("messages", "directory")}, "does not verify"),
        ("host", {"uri": URI.replace("8081", "8082")}, "does not verify"),
        ("key", {"key": other.public_key()}, "does not verify"),
        ("old", {"now": NOW + 301}, "stale"),
        ("future", {"now": NOW - 301}, "stale"),
        ("digest swapped", {"headers": {**good, "Content-Digest": httpsig.content_digest(b"x")}, "body": b"x"},
         "does not verify"),
        ("no digest", {"headers": {k: v for k, v in good.items() if k != "Content-Digest"}}, "Content-Digest"),
        ("unsigned", {"headers": {"Content-Digest": good["Content-Digest"]}}, "not signed"),
        ("garbage input", {"headers": {**good, "Signature-Input": "sig1=(((("}}, "malformed"),
        ("garbage value", {"headers": {**good, "Signature": "sig1=:!!!:"}}, "malformed"),
        ("short", {"headers": {**good, "Signature": "sig1=:" + base64.b64encode(b"x" * 10).decode() + ":"}},
         "64 bytes"),
        ("wrong label", {"headers": {**good, "Signature": good["Signature"].replace("sig1", "sig2")}},
         "no signature labelled"),
        ("alg", {"headers": {**good, "Signature-Input": good["Signature-Input"].replace("ecdsa-p256-sha256",
                                                                                        "hmac-sha256")}},
         "unsupported signature algorithm"),
        ("fewer components", {"headers": {**good, "Signature-Input": good["Signature-Input"].replace(
            ' "content-digest"', "")}}, 'does not cover "content-digest"'),
        ("no nonce", {"headers": {**good, "Signature-Input": good["Signature-Input"].split(";nonce=")[0]
                                  + ';alg="ecdsa-p256-sha256"'}}, "no 'nonce'"),
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


def test_response_is_bound_to_the_request_signature() -> None:
    node_a = ec.generate_private_key(ec.SECP256R1())
    node_b = ec.generate_private_key(ec.SECP256R1())
    req_headers = _signed(node_a)
    request = HttpMessage(headers=req_headers, method="POST", target_uri=URI)
    resp_headers = sign_response(200, b"receipt", request, node_b, "npa", NOW)
    assert '"signature";key="sig1";req' in resp_headers["Signature-Input"]
    received = parse_signature(resp_headers)
    verify_response(received, 200, resp_headers, b"receipt", request, node_b.public_key(), NOW)
    # The same response does not answer another request (another nonce, another signature).
    other = HttpMessage(headers=_signed(node_a), method="POST", target_uri=URI)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(received, 200, resp_headers, b"receipt", other, node_b.public_key(), NOW)
    for status, body in ((201, b"receipt"), (200, b"receipu")):
        with pytest.raises(SignatureError):
            verify_response(received, status, resp_headers, body, request, node_b.public_key(), NOW)
    # An unsigned request (GET /node) still gets a response bound to its method and URI.
    plain = HttpMessage(headers={}, method="GET", target_uri=URI)
    plain_headers = sign_response(200, b"{}", plain, node_b, "npa", NOW)
    verify_response(parse_signature(plain_headers), 200, plain_headers, b"{}", plain, node_b.public_key(), NOW)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(parse_signature(plain_headers), 200, plain_headers, b"{}",
                        HttpMessage(headers={}, method="GET", target_uri=URI + "x"), node_b.public_key(), NOW)


def test_structured_field_round_trip() -> None:
    text = 'a=("x" "y";req;key="k");created=1;keyid="n\\"q", b=:AAE=:, d=?0, e=tok/en'
    parsed = httpsig.parse_dictionary(text)
    assert ", ".join(f"{k}={httpsig.serialize_member(v)}" for k, v in parsed.items()) == (
        'a=("x" "y";req;key="k");created=1;keyid="n\\"q", b=:AAE=:, d=?0, e=tok/en'
    )


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
