"""Verification: tampered, appended, re-imprinted, revoked, foreign and unsealed documents; CLI and web."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import func, select

from inkless.app import Node
from inkless.db import tables as t
from inkless.directory.tokens import ApiTokenService
from inkless.errors import ValidationError
from inkless.pki.model import CertPurpose
from inkless.seals.imprint import SealKind
from inkless.seals.model import Change, Indication, PadesLevel, SealPlacement, SubIndication
from inkless.seals.sealing import SealingService
from inkless.web.app import create_app
from tests.helpers.seals import demo_node, red_pixels, sample_pdf

with warnings.catch_warnings():
    # Starlette warns that its test client prefers the httpx2 package; httpx is what we have.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

INKLESS = Path(sys.executable).parent / "inkless"
BOX = (400.0, 100.0, 434.0, 134.0)


@pytest.fixture(scope="module")
def vnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with demo_node("sqlite", tmp_path_factory.mktemp("verify-node")) as node:
        yield node


@pytest.fixture(scope="module")
def sealed(vnode: Node) -> bytes:
    assert vnode.sealing is not None
    return vnode.sealing.seal(sample_pdf(), "tanaka", SealKind.PERSONAL, SealPlacement(page=1, box=BOX),
                              actor="tanaka")


def verify(node: Node, pdf: bytes, **kwargs: bool):  # type: ignore[no-untyped-def]
    assert node.sealing is not None
    return node.sealing.verify(pdf, **kwargs)


def test_an_untouched_seal_passes_with_its_imprint(vnode: Node, sealed: bytes) -> None:
    report = verify(vnode, sealed, with_imprints=True)
    assert report.indication == Indication.PASSED
    (seal,) = report.seals
    assert seal.intact and seal.valid and seal.trusted and seal.revocation == "good"
    assert seal.page == 1 and seal.rect == BOX
    assert seal.imprint_png is not None and seal.imprint_png.startswith(b"\x89PNG")
    # The seal is followed by its validation data (DSS), added in a revision of its own.
    assert seal.change == Change.LTA_UPDATES


def test_one_changed_byte_in_the_signed_range_fails_with_hash_failure(vnode: Node, sealed: bytes) -> None:
    at = sealed.index(b"Request for approval")
    tampered = sealed[:at] + b"Reqvest" + sealed[at + 7:]
    assert len(tampered) == len(sealed)
    report = verify(vnode, tampered)
    assert report.indication == Indication.FAILED
    assert report.seals[0].subindication == SubIndication.HASH_FAILURE
    assert "altered after sealing" in report.seals[0].reason
    assert "altered after sealing" in report.reason


def test_a_page_appended_after_sealing_is_reported(vnode: Node, sealed: bytes) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    stream = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 700 Td (Added later) Tj ET"))
    writer.insert_page(PageObject(contents=stream, media_box=(0, 0, 595, 842)))
    out = io.BytesIO()
    writer.write(out)
    report = verify(vnode, out.getvalue())
    seal = report.seals[0]
    assert seal.intact  # the sealed revision itself is untouched ...
    assert seal.change == Change.OTHER  # ... but what came after is not allowed
    assert report.indication == Indication.FAILED
    assert seal.subindication == SubIndication.SIG_CONSTRAINTS_FAILURE
    assert "what you see is not what was sealed" in seal.change_summary


def test_a_replaced_imprint_is_reported(vnode: Node, sealed: bytes) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed))
    ((_, _, ref),) = list(fields.enumerate_sig_fields(writer, filled_status=True))
    field = ref.get_object()
    widget_ref = ref if "/AP" in field else field.raw_get("/Kids")[0]
    widget = widget_ref.get_object()
    # A forger redraws the appearance: a blue square where the vermilion seal was.
    forged = writer.add_object(generic.StreamObject(
        {pdf_name("/Type"): pdf_name("/XObject"), pdf_name("/Subtype"): pdf_name("/Form"),
         pdf_name("/BBox"): generic.ArrayObject([generic.FloatObject(v) for v in (0, 0, 34, 34)])},
        stream_data=b"0 0 1 rg 0 0 34 34 re f",
    ))
    widget[pdf_name("/AP")] = generic.DictionaryObject({pdf_name("/N"): forged})
    writer.mark_update(widget_ref)
    out = io.BytesIO()
    writer.write(out)
    forged_pdf = out.getvalue()
    assert red_pixels(forged_pdf, 1, BOX)[0] == 0  # the imprint really is gone from the page
    report = verify(vnode, forged_pdf)
    assert report.indication != Indication.PASSED
    assert report.seals[0].change == Change.OTHER
    assert report.seals[0].reason


def test_a_seal_whose_certificate_was_revoked_is_not_passed(vnode: Node) -> None:
    assert vnode.sealing is not None
    pdf = vnode.sealing.seal(sample_pdf(), "ito", SealKind.PERSONAL, SealPlacement(page=1, box=BOX), actor="ito")
    # The CRL gives the revocation time in whole seconds: revoke in a later second than the seal's timestamp,
    # so that the timestamp is proof the seal existed before the revocation.
    time.sleep(1.1)
    with vnode.db.begin() as conn:
        cert = vnode.pki.certificate(conn, CertPurpose.USER_SEAL, "ito")
        vnode.pki.revoke(conn, cert.serial, "keyCompromise")
    report = verify(vnode, pdf)
    seal = report.seals[0]
    assert seal.revocation == "revoked"
    assert (seal.indication, seal.subindication) == (Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE)
    assert "timestamped before that" in seal.reason
    assert "revoked" in seal.reason and "key_compromise" in seal.reason


def _foreign_signed(pdf: bytes) -> tuple[bytes, x509.Certificate]:
    # A signature by a CA no inkless node knows.
    now = datetime.now(UTC)

    def cert(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signing_key: ec.EllipticCurvePrivateKey,
             ca: bool) -> x509.Certificate:
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, content_commitment=not ca, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                    encipher_only=False, decipher_only=False), critical=True)
                .sign(signing_key, hashes.SHA256()))

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("Stranger CA", "Stranger CA", ca_key, ca_key, True)
    leaf = cert("Stranger", "Stranger CA", key, ca_key, False)

    def asn1(c: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    signer = signers.SimpleSigner(
        signing_cert=asn1(leaf),
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=SimpleCertificateStore.from_certs([asn1(ca_cert)]),
    )
    meta = signers.PdfSignatureMetadata(field_name="Foreign", subfilter=SigSeedSubFilter.PADES)
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer)
    return bytes(out.getvalue()), ca_cert


def test_a_seal_from_an_unknown_ca_is_indeterminate_and_unsealed_files_say_so(vnode: Node) -> None:
    report = verify(vnode, _foreign_signed(sample_pdf())[0])
    assert report.indication == Indication.INDETERMINATE
    assert report.seals[0].subindication == SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert not report.seals[0].trusted
    empty = verify(vnode, sample_pdf())
    assert empty.seals == () and empty.indication == Indication.INDETERMINATE
    assert "no seals" in empty.reason
    for bad, message in ((b"", "not a PDF"), (b"GIF89a....", "not a PDF"), (b"%PDF-1.4\n%%EOF", "cannot be read")):
        with pytest.raises(ValidationError, match=message):
            verify(vnode, bad)


def test_a_pinned_peers_ca_is_a_trust_anchor(vnode: Node) -> None:
    assert vnode.sealing is not None
    pdf, peer_ca = _foreign_signed(sample_pdf())
    service = SealingService(
        vnode.db, vnode.pki, vnode.directory, vnode.audit, vnode.clock, node_id=vnode.node_id,
        organisation=vnode.settings.organisation, timestamper=vnode.sealing.timestamper,
        trust_source=lambda: [peer_ca],
    )
    assert peer_ca in service.trust_anchors()
    report = service.verify(pdf)
    seal = report.seals[0]
    assert report.indication == Indication.PASSED
    assert seal.trusted and seal.trust_anchor == "Stranger CA"
    assert seal.revocation == "unknown"  # we hold no CRL of the peer
    assert seal.pades_level == PadesLevel.B_B  # no timestamp on that one


def test_cli_verify_exit_codes_and_json(vnode: Node, sealed: bytes, tmp_path: Path) -> None:
    good = tmp_path / "good.pdf"
    good.write_bytes(sealed)
    at = sealed.index(b"Request for approval")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(sealed[:at] + b"X" + sealed[at + 1:])
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(sample_pdf())
    env = {**os.environ, "INKLESS_DATA": str(vnode.settings.data_dir)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(INKLESS), *args], capture_output=True, text=True, env=env)

    ok = run("verify", str(good), "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["indication"] == "PASSED" and data["seals"][0]["signer_name"] == "田中 花子"
    failed = run("verify", str(bad))
    assert failed.returncode == 5
    assert "FAILED / HASH_FAILURE" in failed.stdout
    assert run("verify", str(plain)).returncode == 1
    # (a file that is not a PDF is a ValidationError: exit code 2 like every bad input)


def test_web_verify_page_api_and_trust_bundle(vnode: Node, sealed: bytes) -> None:
    client = TestClient(create_app(vnode))
    page = client.post("/verify", files={"file": ("sealed.pdf", sealed, "application/pdf")})
    assert page.status_code == 200
    assert "合格" in page.text and "田中 花子" in page.text and "data:image/png;base64," in page.text
    # Every page of the verified document is drawn into the report (nothing is stored to serve it later).
    pages = page.text[page.text.index('id="verified-pages"'):]
    count = len(PdfFileReader(io.BytesIO(sealed)).root["/Pages"]["/Kids"])
    assert pages.count('<img src="data:image/png;base64,') == count and f"{count} / {count} ページ" in pages
    english = client.post("/verify?lang=en", files={"file": ("sealed.pdf", sealed, "application/pdf")})
    assert "PASSED: the seal is valid" in english.text
    at = sealed.index(b"Request for approval")
    tampered = sealed[:at] + b"X" + sealed[at + 1:]
    api = client.post("/api/v1/verify", files={"file": ("t.pdf", tampered, "application/pdf")})
    assert api.status_code == 200
    assert api.json()["indication"] == "FAILED" and api.json()["seals"][0]["subindication"] == "HASH_FAILURE"
    garbage = client.post("/verify", files={"file": ("x.pdf", b"hello", "application/pdf")})
    assert garbage.status_code == 422 and "PDF" in garbage.text
    bundle = client.get("/pki/trust-bundle.pem")
    assert bundle.status_code == 200
    certs = x509.load_pem_x509_certificates(bundle.content)
    with vnode.db.begin() as conn:
        assert certs[0].public_bytes(serialization.Encoding.DER) == vnode.pki.ca_certificate(conn).der


def test_web_seal_api_seals_as_the_caller_and_guards_the_office_seal(vnode: Node) -> None:
    client = TestClient(create_app(vnode))
    tokens = ApiTokenService(vnode.db, vnode.directory, vnode.audit, vnode.clock)

    def bearer(login: str) -> dict[str, str]:
        user = vnode.directory.user(login)
        return {"Authorization": "Bearer " + tokens.create(login, user.office_code, f"t-{login}", 1,
                                                          actor=login).secret}

    pdf = sample_pdf()
    form = {"kind": "personal", "page": "1", "x": "400", "y": "100"}
    anonymous = client.post("/api/v1/seal", files={"file": ("a.pdf", pdf, "application/pdf")}, data=form)
    assert anonymous.status_code == 401
    clerk = bearer("tanaka")
    ok = client.post("/api/v1/seal", headers=clerk, files={"file": ("a.pdf", pdf, "application/pdf")}, data=form)
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/pdf"
    assert verify(vnode, ok.content).seals[0].signer_name == "田中 花子"
    office = {**form, "kind": "office"}
    refused = client.post("/api/v1/seal", headers=clerk, files={"file": ("a.pdf", pdf, "application/pdf")},
                          data=office)
    assert refused.status_code == 403
    approver = bearer("suzuki")
    no_code = client.post("/api/v1/seal", headers=approver, files={"file": ("a.pdf", pdf, "application/pdf")},
                          data=office)
    assert no_code.status_code == 403 and "one-time code" in no_code.text
    wrong = client.post("/api/v1/seal", headers=approver, files={"file": ("a.pdf", pdf, "application/pdf")},
                        data={**office, "totp": "000000"})
    assert wrong.status_code == 401
    # A wrong code counts against the login rate limit and is audited, as at login.
    with vnode.db.begin() as conn:
        failures = conn.execute(
            select(t.audit_entries.c.entry).where(t.audit_entries.c.action == "auth.login_failed",
                                                  t.audit_entries.c.object_id == "suzuki")
        ).scalars().all()
        attempts = conn.execute(
            select(func.count()).select_from(t.login_attempts)
            .where(t.login_attempts.c.login == "suzuki", t.login_attempts.c.success.is_(False))
        ).scalar_one()
    assert any(b"office-seal" in f for f in failures) and attempts >= 1
    code = vnode.directory.current_totp("suzuki")
    stamped = client.post("/api/v1/seal", headers=approver, files={"file": ("a.pdf", pdf, "application/pdf")},
                          data={**office, "totp": code})
    assert stamped.status_code == 200, stamped.text
    report = verify(vnode, stamped.content)
    assert report.indication == Indication.PASSED and report.seals[0].signer_name == "民事局"
    garbage = client.post("/api/v1/seal", headers=clerk, files={"file": ("a.pdf", b"junk", "application/pdf")},
                          data=form)
    assert garbage.status_code == 422


def test_my_seals_page_shows_the_three_previews_of_the_logged_in_user(vnode: Node) -> None:
    from inkless.web.deps import SESSION_COOKIE
    from inkless.web.security import SessionStore, Stage

    client = TestClient(create_app(vnode))
    for path in ("/seals", "/seals/preview/personal.png"):
        anonymous = client.get(path, follow_redirects=False)
        assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/login"), path
    store = SessionStore(vnode.db, vnode.clock, 60)
    user = vnode.directory.user("sato")
    with vnode.db.begin() as conn:
        cookie, _ = store.start(conn, user.id, Stage.ACTIVE, "test")
    client.cookies.set(SESSION_COOKIE, cookie)
    page = client.get("/seals")
    assert page.status_code == 200 and "私の印鑑" in page.text
    for kind in ("personal", "date", "office"):
        assert f'src="/seals/preview/{kind}.png"' in page.text
        png = client.get(f"/seals/preview/{kind}.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
    assert client.get("/seals/preview/stamp.png").status_code == 422
    assert 'href="/seals" aria-current="page"' in page.text  # the navigation links here
