"""Write the seed corpora: one or more valid inputs per target, under ``fuzz/corpus/TARGET/``.

Run ``python -m fuzz.seeds`` from the repository root after changing a format; the seeds are
committed, so that every fuzzing run starts from inputs that reach deep into the parser.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from fuzz.targets import NOW, TARGETS, _pki

CORPUS = Path(__file__).parent / "corpus"

SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=fax\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
)
SDP_T38 = (
    "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=fax\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=image 20002 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n"
    "a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxDatagram:400\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n"
)


def _invite(body: str) -> bytes:
    return (
        "INVITE sip:0335804111@192.0.2.20:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\nTo: <sip:0335804111@192.0.2.20>\r\n"
        "From: \"Tanaka\" <sip:0312345678@192.0.2.10>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@192.0.2.10\r\nCSeq: 314159 INVITE\r\n"
        "Contact: <sip:0312345678@192.0.2.10:5060>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def seeds() -> dict[str, list[bytes]]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from PIL import Image, ImageDraw

    from inkless.audit.cosignature import Cosignature, cosignature_bytes
    from inkless.audit.log import TreeHead, tree_head_bytes
    from inkless.delivery import envelope as env
    from inkless.delivery.receipt import ReceiptFacts, make_receipt
    from inkless.fax.imaging import encode_tiff, tiff_to_pdf
    from inkless.federation import httpsig

    pki = _pki()
    ca = pki["ca"].cert
    sign_key, sign_cert = pki["sign"]
    _enc_key, enc_cert = pki["enc"]
    node_key, node_cert = pki["node"]
    assert isinstance(node_key, ec.EllipticCurvePrivateKey)

    meta = env.MessageMetadata(
        message_id="m-1", sender="civil-affairs@moj", recipients=("security@npa",), subject="登記事項の照会",
        classification=1, priority="normal", created_at=NOW, procedure_code="MOJ-001",
    )
    mime = env.build_mime(meta, [env.Document("照会書.pdf", "application/pdf", b"%PDF-1.7\n%%EOF\n")])
    signed = env.sign(mime, sign_key, sign_cert, [ca])
    facts = ReceiptFacts("m-1", "0" * 64, "security@npa", NOW)
    receipt = make_receipt(facts, sign_key, sign_cert, [ca])

    body = b"\x30\x03\x02\x01\x00"
    headers = httpsig.sign_request("POST", "https://moj.example/federation/v1/messages", body, node_key, "npa",
                                   int(NOW.timestamp()))
    signed_request = "".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n" + body

    page = Image.new("1", (1728, 400), 1)
    ImageDraw.Draw(page).rectangle((100, 100, 900, 200), fill=0)
    tiff = encode_tiff([page], y_dpi=98)
    pdf = tiff_to_pdf(tiff)

    csv_rows = ("手続コード,手続名,府省,担当部署,根拠法令,押印,FAX・紙\r\n"
                "MOJ-001,登記事項証明書の交付請求,法務省,civil,不動産登記法第119条,なし,可\r\n")

    root = hashlib.sha256(b"root").digest()
    head_bytes = tree_head_bytes("moj", 12, root, NOW)
    head = TreeHead("moj", 12, root, NOW, node_key.sign(head_bytes, ec.ECDSA(hashes.SHA256())),
                    node_cert.public_bytes(serialization.Encoding.DER))
    at = NOW + timedelta(seconds=5)
    cosig = Cosignature("npa", "moj", 12, root, NOW, at,
                        node_key.sign(cosignature_bytes("npa", at, head_bytes), ec.ECDSA(hashes.SHA256())),
                        node_cert.public_bytes(serialization.Encoding.DER))

    return {
        "sip": [_invite(SDP), _invite(SDP_T38),
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx\r\nCall-ID: c\r\n"
                b"CSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\", algorithm=SHA-256, "
                b"qop=\"auth\"\r\nContent-Length: 0\r\n\r\n"],
        "sdp": [SDP.encode(), SDP_T38.encode()],
        "mime": [mime],
        "cms-signed": [signed],
        "cms-enveloped": [env.encrypt(signed, [enc_cert])],
        "receipt": [receipt, facts.canonical_json()],
        "httpsig": [signed_request],
        "pdf-verify": [pdf],
        "fax-tiff": [tiff],
        "fax-document": [pdf, tiff],
        "csv-procedures": [csv_rows.encode("utf-8"), csv_rows.encode("cp932")],
        "audit-head": [json.dumps(head.to_json()).encode(), json.dumps(cosig.to_json()).encode()],
        "intake-upload": ["申請書.pdf\n".encode() + pdf,
                          b"photo.png\n" + _image(page, "PNG"), b"scan.jpg\n" + _image(page.convert("L"), "JPEG")],
        "clamd-reply": [b"stream: OK\0", b"stream: Eicar-Test-Signature FOUND\0",
                        b"INSTREAM size limit exceeded. ERROR\0"],
        "email-address": [b"taro@example.co.jp", "花子 <hanako@example.jp>".encode(), b" a.b+c@x.example "],
    }


def _image(image: Any, kind: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()


def main() -> None:
    made = seeds()
    missing = set(TARGETS) - set(made)
    assert not missing, f"targets without seeds: {sorted(missing)}"
    for name, inputs in made.items():
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / f"seed-{hashlib.sha256(data).hexdigest()[:16]}").write_bytes(data)
        print(f"{name}: {len(inputs)} seed(s)")


if __name__ == "__main__":
    main()
