"""An exported envelope opens with the real openssl binary: decrypt with the recipient office's key,
verify against the sending node's CA, and the MIME parts are the documents that were sent."""

from __future__ import annotations

import email
import email.policy
import io
import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from inkless.app import Node
from inkless.delivery import envelope as env
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.errors import EnvelopeError
from inkless.pki.model import CertPurpose
from tests.helpers.pki import ca_pem, cert_and_key_pem


def pdf(text: str) -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    page.drawString(72, 720, text)
    page.showPage()
    page.save()
    return out.getvalue()


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, check=False)


# The envelope bytes do not depend on the database: SQLite is enough here.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_exported_envelope_opens_with_openssl_cms(node: Node, demo: DemoSample, tmp_path: Path) -> None:
    assert node.delivery is not None
    docs = [NewDocument("照会書.pdf", pdf("Inquiry")), NewDocument("annex.pdf", pdf("Annex"))]
    message_id = node.delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], "照会", docs,
                                    classification=1)
    assert node.delivery.deliver_due().delivered == 1
    out = tmp_path / "export"
    node.delivery.export(message_id, "takahashi", out)
    cert, key = cert_and_key_pem(node, CertPurpose.OFFICE_ENCRYPTION, "criminal-affairs", tmp_path)
    ca = ca_pem(node, tmp_path)

    dec = openssl("cms", "-decrypt", "-inform", "DER", "-in", str(out / "envelope.p7m"), "-recip", str(cert),
                  "-inkey", str(key), "-out", str(tmp_path / "signed.der"), "-binary")
    assert dec.returncode == 0, dec.stderr.decode()
    ver = openssl("cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "signed.der"), "-CAfile", str(ca),
                  "-binary", "-out", str(tmp_path / "message.eml"))
    assert ver.returncode == 0, ver.stderr.decode()
    assert b"Verification successful" in ver.stderr

    mime = email.message_from_bytes((tmp_path / "message.eml").read_bytes(), policy=email.policy.default)
    parts = list(mime.iter_parts())  # type: ignore[attr-defined]
    meta = json.loads(parts[0].get_payload(decode=True))
    assert meta["message_id"] == message_id and meta["from"] == "civil-affairs@moj"
    assert meta["to"] == ["criminal-affairs@moj"] and meta["classification"] == 1
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in parts[1:]] == [(d.name, d.data) for d in docs]

    # The receipt verifies with openssl too, and says what it is for.
    [receipt] = out.glob("receipt-*.p7s")
    rv = openssl("cms", "-verify", "-inform", "DER", "-in", str(receipt), "-CAfile", str(ca), "-binary")
    assert rv.returncode == 0, rv.stderr.decode()
    assert json.loads(rv.stdout)["message_id"] == message_id

    # Someone else's key cannot open it; one flipped byte and our own receiver refuses it.
    other_cert, other_key = cert_and_key_pem(node, CertPurpose.OFFICE_ENCRYPTION, "secretariat", tmp_path)
    assert openssl("cms", "-decrypt", "-inform", "DER", "-in", str(out / "envelope.p7m"), "-recip",
                   str(other_cert), "-inkey", str(other_key)).returncode != 0
    data = bytearray((out / "envelope.p7m").read_bytes())
    data[-40] ^= 0x01
    try:
        node.delivery.receive(bytes(data), "civil-affairs@moj", "criminal-affairs@moj")
    except EnvelopeError as exc:
        assert str(exc)
    else:
        raise AssertionError("a tampered envelope was accepted")


# The envelope bytes do not depend on the database: SQLite is enough here.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_envelope_openssl_writes_as_a_stream_is_received(node: Node, demo: DemoSample, tmp_path: Path) -> None:
    """Ours accepts theirs: ``openssl cms -sign -stream`` and ``-encrypt -stream`` write BER with indefinite
    lengths and the content in segments; the receiver reads it as it streams and stores it."""
    assert node.delivery is not None
    sign_cert, sign_key = cert_and_key_pem(node, CertPurpose.OFFICE_SIGNING, "civil-affairs", tmp_path)
    enc_cert, _ = cert_and_key_pem(node, CertPurpose.OFFICE_ENCRYPTION, "criminal-affairs", tmp_path)
    document = pdf("Written by openssl") + bytes(range(256)) * 4000  # a content of several segments
    meta = env.MessageMetadata(str(uuid.uuid4()), "civil-affairs@moj", ("criminal-affairs@moj",), "照会", 1,
                               "normal", datetime.now(UTC))
    (tmp_path / "message.eml").write_bytes(env.build_mime(meta, [env.Document("照会書.pdf", "application/pdf",
                                                                              document)]))
    signed = openssl("cms", "-sign", "-binary", "-stream", "-nodetach", "-outform", "DER", "-in",
                     str(tmp_path / "message.eml"), "-signer", str(sign_cert), "-inkey", str(sign_key),
                     "-md", "sha256", "-out", str(tmp_path / "signed.der"))
    assert signed.returncode == 0, signed.stderr.decode()
    encrypted = openssl("cms", "-encrypt", "-binary", "-stream", "-aes256", "-outform", "DER", "-in",
                        str(tmp_path / "signed.der"), "-out", str(tmp_path / "envelope.p7m"), str(enc_cert))
    assert encrypted.returncode == 0, encrypted.stderr.decode()
    envelope = (tmp_path / "envelope.p7m").read_bytes()
    assert envelope[1] == 0x80  # indefinite length: the streamed form
    receipt = node.delivery.receive(envelope, "civil-affairs@moj", "criminal-affairs@moj")
    assert receipt
    opened = node.delivery.open_message(meta.message_id, "takahashi")
    assert [(d.name, d.data) for d in opened.documents] == [("照会書.pdf", document)]
