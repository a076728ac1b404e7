"""The verification report of real sealed PDFs, sealed and checked in memory with pyHanko (no node, no server).

A throw-away CA issues a seal certificate and a TSA certificate; pyHanko seals sample PDFs with them
(PAdES, visible or not, with or without a signature timestamp, document timestamps), and each test
checks the report that ``verify_document`` gives, field by field, against a ValidationContext trusting
that CA only.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from inkless.errors import ValidationError
from inkless.seals.model import Change, Indication, PadesLevel, SealResult, SubIndication
from inkless.seals.verify import CHANGE_SENTENCES, render_region, verify_document
from tests.helpers.seals import sample_pdf

NOW = datetime.now(UTC).replace(microsecond=0)
BOX = (400.0, 100.0, 434.0, 134.0)


def _name(cn: str, ou: str | None = None, o: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    if o:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    return x509.Name(parts)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _key_info(key: Any) -> asn1_keys.PrivateKeyInfo:
    return asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@dataclass(frozen=True)
class Pki:
    """A CA with a seal certificate (serial 0x1234AB) and a TSA certificate under it."""

    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    seal: signers.SimpleSigner
    tsa: DummyTimeStamper

    @staticmethod
    def create(cn: str = "moj CA", crl_url: str | None = None) -> Pki:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(ca_key.public_key())
            .serial_number(1).not_valid_before(NOW - timedelta(days=10)).not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )

        def leaf(subject: x509.Name, serial: int, eku: x509.ObjectIdentifier | None, key: Any = None
                 ) -> tuple[Any, x509.Certificate]:
            key = key or ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(serial).not_valid_before(NOW - timedelta(days=5))
                .not_valid_after(NOW + timedelta(days=365))
                .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                               critical=True)
            )
            if eku is not None:
                builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=True)
            if crl_url is not None:
                builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                    [x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
            return key, builder.sign(ca_key, hashes.SHA256())

        seal_key, seal_cert = leaf(_name("田中 太郎", "民事局", "法務省"), 0x1234AB, None)
        tsa_key, tsa_cert = leaf(_name("moj TSA"), 0x99, ExtendedKeyUsageOID.TIME_STAMPING,
                                 rsa.generate_private_key(65537, 2048))
        registry = SimpleCertificateStore.from_certs([_asn1(ca)])  # type: ignore[no-untyped-call]
        seal = signers.SimpleSigner(signing_cert=_asn1(seal_cert), signing_key=_key_info(seal_key),
                                    cert_registry=registry)
        tsa = DummyTimeStamper(_asn1(tsa_cert), _key_info(tsa_key), certs_to_embed=registry)
        return Pki(ca, ca_key, seal, tsa)

    def context(self) -> ValidationContext:
        return ValidationContext(trust_roots=[_asn1(self.ca)], allow_fetching=False, moment=NOW)


@functools.cache
def pki() -> Pki:
    return Pki.create()


def seal(pdf: bytes, field: str, *, page: int = 1, box: tuple[float, float, float, float] | None = BOX,
         timestamp: bool = False, by: Pki | None = None) -> bytes:
    """``pdf`` sealed in a new field (visible in ``box`` on ``page``, invisible without a box)."""
    signer = (by or pki())
    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES)
    spec = SigFieldSpec(field)
    if box:
        x1, y1, x2, y2 = (int(v) for v in box)
        spec = SigFieldSpec(sig_field_name=field, on_page=page - 1, box=(x1, y1, x2, y2))
    out = io.BytesIO()
    signers.PdfSigner(meta, signer.seal, timestamper=signer.tsa if timestamp else None,
                      new_field_spec=spec).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=out)
    return out.getvalue()


def document_timestamp(pdf: bytes) -> bytes:
    out = io.BytesIO()
    signers.PdfTimeStamper(pki().tsa).timestamp_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), "sha256",
                                                    output=out)
    return out.getvalue()


@functools.cache
def sealed() -> bytes:
    return seal(sample_pdf(), "課長")


def expected_seal(**changes: object) -> SealResult:
    """The result of an untouched visible seal of ``pki()`` on page 1 (then ``changes``)."""
    values: dict[str, object] = {
        "index": 1, "field_name": "課長", "kind": "seal", "indication": Indication.PASSED, "subindication": None,
        "reason": "", "signer_name": "田中 太郎", "office": "民事局", "organisation": "法務省",
        "certificate_serial": "1234ab", "timestamp_time": None, "intact": True, "valid": True, "trusted": True,
        "trust_anchor": "moj CA", "revocation": "unknown", "coverage": "ENTIRE_FILE", "change": Change.NONE,
        "change_summary": CHANGE_SENTENCES[Change.NONE], "changed_fields": (), "certification": None,
        "docmdp_ok": True, "pades_level": PadesLevel.B_B, "page": 1, "rect": BOX,
        "subfilter": "ETSI.CAdES.detached",
    }
    values.update(changes)
    return SealResult(signing_time=None, **values)  # type: ignore[arg-type]


def _without_times(result: SealResult) -> SealResult:
    return replace(result, signing_time=None, timestamp_time=None)


def test_an_untouched_seal_passes_with_every_field_read_from_it() -> None:
    pdf = sealed()
    report = verify_document(pdf, pki().context(), NOW)
    assert (report.document_sha256, report.indication, report.subindication, report.reason, report.validated_at) == (
        hashlib.sha256(pdf).hexdigest(), Indication.PASSED, None, "All 1 signature(s) passed.", NOW)
    [result] = report.seals
    # read from the seal: made after this module was loaded and before now (a loaded machine may be minutes apart)
    assert result.signing_time is not None and NOW <= result.signing_time <= datetime.now(UTC)
    assert _without_times(result) == expected_seal()
    assert result.imprint_png is None


def test_revocation_is_good_only_under_an_anchor_whose_crl_is_at_hand() -> None:
    [result] = verify_document(sealed(), pki().context(), NOW, crl_anchors=frozenset({"moj CA"})).seals
    assert result.revocation == "good"
    [result] = verify_document(sealed(), pki().context(), NOW, crl_anchors=frozenset({"npa CA"})).seals
    assert result.revocation == "unknown"


def test_a_revoked_seal_fails_and_says_so() -> None:
    revoking = Pki.create("moj CA", crl_url="http://moj.invalid/crl")
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(revoking.ca.subject)
        .last_update(NOW - timedelta(days=1)).next_update(NOW + timedelta(days=7))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(0x1234AB)
                                 .revocation_date(NOW - timedelta(hours=1)).build())
        .sign(revoking.ca_key, hashes.SHA256())
    )
    context = ValidationContext(trust_roots=[_asn1(revoking.ca)], allow_fetching=False, moment=NOW,
                                crls=[asn1_crl.CertificateList.load(crl.public_bytes(serialization.Encoding.DER))])
    pdf = seal(sample_pdf(), "課長", by=revoking)
    [result] = verify_document(pdf, context, NOW, crl_anchors=frozenset({"moj CA"})).seals
    assert (result.indication, result.subindication, result.revocation, result.trusted) == (
        Indication.FAILED, SubIndication.REVOKED, "revoked", False)
    assert result.reason.startswith("The signer's certificate has been revoked on ")
    assert result.reason.endswith(" JST (unspecified).")
    # Without the CRL the same seal passes, its revocation unknown unless its anchor's CRL is at hand.
    [result] = verify_document(pdf, revoking.context(), NOW).seals
    assert (result.indication, result.revocation) == (Indication.PASSED, "unknown")


def test_a_seal_whose_timestamp_comes_from_an_unknown_tsa_asks_for_proof_of_existence() -> None:
    stranger = replace(pki(), tsa=Pki.create("x CA").tsa)
    [result] = verify_document(seal(sample_pdf(), "課長", timestamp=True, by=stranger), pki().context(), NOW).seals
    assert (result.indication, result.subindication, result.pades_level) == (
        Indication.INDETERMINATE, SubIndication.NO_POE, PadesLevel.B_T)
    assert result.reason == ("The seal itself verifies, but its timestamp token is not from a trusted "
                             "time-stamping authority.")
    assert result.timestamp_time is not None


def test_a_seal_under_an_unknown_ca_is_indeterminate_and_names_no_anchor() -> None:
    pdf = seal(sample_pdf(), "課長", by=Pki.create("moj CA"))  # the same name, another key
    report = verify_document(pdf, pki().context(), NOW, crl_anchors=frozenset({"moj CA"}))
    [result] = report.seals
    assert (result.indication, result.subindication, result.trusted, result.trust_anchor, result.revocation) == (
        Indication.INDETERMINATE, SubIndication.GENERIC, False, None, "unknown")
    assert result.reason == "The signer's certificate does not chain to a known inkless node CA (GENERIC)."
    assert (report.indication, report.subindication) == (Indication.INDETERMINATE, SubIndication.GENERIC)
    assert report.reason == f"Signature 1 (課長): {result.reason}"


def test_two_seals_on_two_pages_are_reported_in_order_and_the_first_sees_the_second() -> None:
    pdf = seal(seal(sample_pdf(pages=2), "課長", page=2), "部長", page=1, box=(100.0, 100.0, 150.0, 140.0))
    report = verify_document(pdf, pki().context(), NOW)
    assert (report.indication, report.reason) == (Indication.PASSED, "All 2 signature(s) passed.")
    first, second = report.seals
    assert (first.index, first.field_name, first.page, first.rect) == (1, "課長", 2, BOX)
    assert (first.coverage, first.change) == ("ENTIRE_REVISION", Change.FORM_FILLING)
    assert first.change_summary == CHANGE_SENTENCES[Change.FORM_FILLING] + " Fields changed: 部長."
    assert first.changed_fields == ("部長",)
    assert (second.index, second.field_name, second.page, second.rect) == (2, "部長", 1, (100.0, 100.0, 150.0, 140.0))
    assert (second.coverage, second.change, second.changed_fields) == ("ENTIRE_FILE", Change.NONE, ())


def test_an_invisible_seal_has_no_place_and_no_imprint() -> None:
    pdf = seal(sample_pdf(), "課長", box=None)
    [result] = verify_document(pdf, pki().context(), NOW, with_imprints=True).seals
    assert _without_times(result) == expected_seal(page=None, rect=None)
    assert result.imprint_png is None


def test_a_visible_seal_comes_with_its_imprint_as_a_reader_draws_it() -> None:
    [result] = verify_document(sealed(), pki().context(), NOW, with_imprints=True).seals
    png = result.imprint_png
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
    # 34 x 34 points at 200 dpi.
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert abs(width - 94) <= 1 and abs(height - 94) <= 1  # pdfium rounds the crop box
    assert render_region(sealed(), 1, BOX) == png
    assert len(render_region(sealed(), 1, BOX, dpi=72)) < len(png)


def test_a_seal_with_a_signature_timestamp_is_b_t_and_carries_its_time() -> None:
    pdf = seal(sample_pdf(), "課長", timestamp=True)
    [result] = verify_document(pdf, pki().context(), NOW).seals
    assert result.timestamp_time is not None and NOW <= result.timestamp_time <= datetime.now(UTC)
    assert _without_times(result) == expected_seal(pades_level=PadesLevel.B_T)


def test_a_seal_whose_timestamp_token_was_damaged_asks_for_proof_of_existence() -> None:
    pdf = seal(sample_pdf(), "課長", timestamp=True)
    start, _ = _contents(pdf)
    der = bytes.fromhex(pdf[start:pdf.index(b">", start)].decode())
    assert der[:2] == b"\x30\x82"
    # Ten bytes before the end of the CMS: inside the token's own signature (outside the PDF's signed bytes).
    at = start + 2 * (4 + int.from_bytes(der[2:4], "big") - 10)
    damaged = pdf[:at] + b"%02x" % (int(pdf[at:at + 2], 16) ^ 0xFF) + pdf[at + 2:]
    [result] = verify_document(damaged, pki().context(), NOW).seals
    assert (result.indication, result.subindication, result.intact, result.valid) == (
        Indication.INDETERMINATE, SubIndication.NO_POE, True, True)
    assert result.reason == "The seal itself verifies, but its timestamp token does not verify."


def test_a_document_timestamp_is_reported_but_is_no_seal() -> None:
    pdf = document_timestamp(sample_pdf())
    report = verify_document(pdf, pki().context(), NOW)
    assert (report.indication, report.subindication, report.reason) == (
        Indication.INDETERMINATE, None, "The document carries no seals.")
    [stamp] = report.seals
    assert (stamp.index, stamp.kind, stamp.field_name, stamp.indication, stamp.page, stamp.rect) == (
        1, "document-timestamp", stamp.field_name, Indication.PASSED, None, None)
    assert stamp.timestamp_time == stamp.signing_time and stamp.timestamp_time is not None
    assert stamp.subfilter == "ETSI.RFC3161"


def test_a_sealed_then_timestamped_document_is_b_lta_and_passes() -> None:
    pdf = document_timestamp(seal(sample_pdf(), "課長", timestamp=True))
    report = verify_document(pdf, pki().context(), NOW)
    assert (report.indication, report.reason) == (Indication.PASSED, "All 2 signature(s) passed.")
    first, stamp = report.seals
    assert (first.kind, first.change, stamp.kind, stamp.index) == ("seal", Change.LTA_UPDATES, "document-timestamp", 2)


def test_a_document_without_seals_is_indeterminate() -> None:
    pdf = sample_pdf()
    report = verify_document(pdf, pki().context(), NOW)
    assert (report.document_sha256, report.seals, report.indication, report.subindication, report.reason) == (
        hashlib.sha256(pdf).hexdigest(), (), Indication.INDETERMINATE, None, "The document carries no seals.")


def test_a_changed_byte_under_the_seal_fails_it() -> None:
    pdf = sealed().replace(b"Request for approval - page 1", b"Request for approval - page 2")
    report = verify_document(pdf, pki().context(), NOW)
    [result] = report.seals
    assert (result.indication, result.subindication, result.intact) == (
        Indication.FAILED, SubIndication.HASH_FAILURE, False)
    assert (report.indication, report.subindication) == (Indication.FAILED, SubIndication.HASH_FAILURE)
    assert report.reason == f"Signature 1 (課長): {result.reason}"


def test_the_worst_seal_decides_and_is_named() -> None:
    good = seal(sample_pdf(), "課長")
    pdf = seal(good, "部長", by=Pki.create("npa CA"), box=(100.0, 100.0, 150.0, 140.0))
    report = verify_document(pdf, pki().context(), NOW)
    first, second = report.seals
    assert (first.indication, second.indication) == (Indication.PASSED, Indication.INDETERMINATE)
    assert report.indication == Indication.INDETERMINATE
    assert report.reason == f"Signature 2 (部長): {second.reason}"


def _contents(pdf: bytes) -> tuple[int, int]:
    start = pdf.index(b"/Contents <") + len(b"/Contents <")
    return start, pdf.index(b">", start)


def test_signatures_that_cannot_be_read_are_refused_with_their_reason() -> None:
    pdf = sealed()
    start, _ = _contents(pdf)
    damaged = pdf[:start] + b"00" * 8 + pdf[start + 16:]
    with pytest.raises(ValidationError) as info:
        verify_document(damaged, pki().context(), NOW)
    assert str(info.value) == ("the PDF's signatures cannot be read: Error parsing asn1crypto.cms.ContentInfo - "
                               "method should have been constructed, but primitive was found")


def test_a_signature_pyhanko_cannot_process_is_one_finding_not_a_crash() -> None:
    pdf = sealed()
    start, end = _contents(pdf)
    sha256 = bytes.fromhex("0609608648016503040201").hex().encode()
    # The signer's digest algorithm (the second SHA-256 OID) made an unknown one.
    at = pdf.index(sha256, pdf.index(sha256, start) + 1)
    assert at < end
    damaged = pdf[:at] + sha256[:-2] + b"7f" + pdf[at + len(sha256):]
    report = verify_document(damaged, pki().context(), NOW)
    [result] = report.seals
    assert (result.indication, result.subindication) == (Indication.FAILED, SubIndication.FORMAT_FAILURE)
    assert result.reason == ("The signature cannot be processed: AttributeError: module "
                             "'cryptography.hazmat.primitives.hashes' has no attribute '2.16.840.1.101.3.4.2.127'")
    assert (result.index, result.field_name, result.kind, result.page, result.rect, result.subfilter) == (
        1, "課長", "seal", 1, BOX, "ETSI.CAdES.detached")
    assert (result.signer_name, result.intact, result.valid, result.signing_time) == (None, False, False, None)
    assert report.reason == f"Signature 1 (課長): {result.reason}"


def test_what_is_not_a_pdf_or_cannot_be_read_is_refused_with_its_reason() -> None:
    with pytest.raises(ValidationError) as info:
        verify_document(b"PK\x03\x04 a zip file", pki().context(), NOW)
    assert str(info.value) == "the file is not a PDF (it does not start with %PDF-)"
    with pytest.raises(ValidationError) as info:
        verify_document(b"  \n%PDF-1.7\nnothing else", pki().context(), NOW)
    assert str(info.value).startswith("the PDF cannot be read: ")
    with pytest.raises(ValidationError) as info:
        verify_document(b"", pki().context(), NOW)
    assert str(info.value) == "the file is not a PDF (it does not start with %PDF-)"


def test_a_pdf_header_after_blank_lines_is_a_pdf_that_cannot_be_read() -> None:
    with pytest.raises(ValidationError) as info:
        verify_document(b"\n\n" + sample_pdf(), pki().context(), NOW)
    assert str(info.value) == "the PDF cannot be read: Illegal PDF header"


def test_an_imprint_of_a_file_pdfium_cannot_open_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        render_region(b"%PDF-1.7 broken", 1, BOX)
    assert str(info.value) == "pdfium cannot open the PDF: Failed to load document (PDFium: Data format error)."


@functools.cache
def _pressed(box: tuple[float, float, float, float]) -> bytes:
    """A sample PDF with the personal seal 田中 pressed in ``box`` on page 1, drawn as the node draws it."""
    from pyhanko.stamp import StaticStampStyle

    from inkless.seals.imprint import personal_seal
    from inkless.seals.sealing import ImprintPage, imprint_pdf

    style = StaticStampStyle(background=ImprintPage(imprint_pdf(personal_seal("田中"))), border_width=0)
    meta = signers.PdfSignatureMetadata(field_name="課長", md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES)
    x1, y1, x2, y2 = (int(v) for v in box)
    spec = SigFieldSpec(sig_field_name="課長", on_page=0, box=(x1, y1, x2, y2))
    out = io.BytesIO()
    signers.PdfSigner(meta, pki().seal, stamp_style=style, new_field_spec=spec).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(sample_pdf())), output=out)
    return out.getvalue()


def _pixels(png: bytes) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGBA"
        raw = image.tobytes()
        return image.size, [(raw[i], raw[i + 1], raw[i + 2], raw[i + 3]) for i in range(0, len(raw), 4)]


# Inside the page, at the lower-left corner and at the upper-right corner of an A4 page (595 x 842 pt).
@pytest.mark.parametrize("box", [BOX, (0.0, 0.0, 34.0, 34.0), (561.0, 808.0, 595.0, 842.0)])
def test_the_imprint_is_the_red_seal_on_a_transparent_ground_at_200_dpi(box: tuple[float, float, float, float]
                                                                       ) -> None:
    [result] = verify_document(_pressed(box), pki().context(), NOW, with_imprints=True).seals
    assert (result.page, result.rect) == (1, box)
    assert result.imprint_png is not None
    (width, height), pixels = _pixels(result.imprint_png)
    # 34 points at 200 dpi are 94.4 pixels, cut at a pixel edge: the whole box, even at the page's edges.
    assert 93 <= width <= 95 and 93 <= height <= 95
    vermilion = [p for p in pixels if p[0] > 150 and p[1] < 120 and p[2] < 120 and p[3] > 128]
    assert len(vermilion) > 1000
    # A round seal leaves the corners of its box unpainted: transparent, not white.
    assert pixels[0] == pixels[-1] == (255, 255, 255, 0)


def test_a_region_is_drawn_at_the_resolution_asked() -> None:
    pdf = _pressed(BOX)
    (width, height), _ = _pixels(render_region(pdf, 1, BOX, dpi=720))
    assert abs(width - 340) <= 1 and abs(height - 340) <= 1


def test_a_seal_whose_widget_names_no_page_has_a_place_but_no_page_and_no_imprint() -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(_pressed(BOX)))
    field = writer.root["/AcroForm"]["/Fields"][0]
    del field["/P"]
    writer.update_container(field)
    out = io.BytesIO()
    writer.write(out)
    [result] = verify_document(out.getvalue(), pki().context(), NOW, with_imprints=True).seals
    assert (result.page, result.rect, result.imprint_png) == (None, BOX, None)


def _nested_page_tree() -> bytes:
    """Three pages whose second and third hang under an intermediate /Pages node."""
    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf(pages=3)))
    pages = writer.root["/Pages"]
    kids = pages["/Kids"]
    refs = [kids.raw_get(i) for i in range(len(kids))]
    middle = writer.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Pages"), pdf_name("/Kids"): generic.ArrayObject(refs[1:]),
        pdf_name("/Count"): generic.NumberObject(2), pdf_name("/Parent"): writer.root.raw_get("/Pages"),
    }))
    for ref in refs[1:]:
        page = ref.get_object()
        page[pdf_name("/Parent")] = middle
        writer.update_container(page)
    pages[pdf_name("/Kids")] = generic.ArrayObject([refs[0], middle])
    writer.update_container(pages)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _untyped_inner_node(pdf: bytes) -> bytes:
    """``pdf`` updated so that its intermediate page-tree node has /Kids but no /Type (as some writers leave it)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    middle = writer.root["/Pages"]["/Kids"][1]
    del middle["/Type"]
    writer.update_container(middle)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pages_in_nested_page_trees_are_numbered_in_reading_order() -> None:
    pdf = seal(seal(_nested_page_tree(), "課長", page=3), "部長", page=2, box=(100.0, 100.0, 150.0, 140.0))
    report = verify_document(pdf, pki().context(), NOW)
    assert [(s.field_name, s.page, s.indication) for s in report.seals] == [
        ("課長", 3, Indication.PASSED), ("部長", 2, Indication.PASSED)]
    # An inner node is recognised by its /Kids too.
    report = verify_document(_untyped_inner_node(pdf), pki().context(), NOW)
    assert [(s.field_name, s.page) for s in report.seals] == [("課長", 3), ("部長", 2)]


def test_an_empty_page_tree_node_is_no_page() -> None:
    """A /Pages node without /Kids (an empty subtree, put first by an update) counts no page."""
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed()))
    pages = writer.root["/Pages"]
    kids = pages["/Kids"]
    empty = writer.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Pages"), pdf_name("/Count"): generic.NumberObject(0),
        pdf_name("/Parent"): writer.root.raw_get("/Pages"),
    }))
    pages[pdf_name("/Kids")] = generic.ArrayObject([empty] + [kids.raw_get(i) for i in range(len(kids))])
    writer.update_container(pages)
    out = io.BytesIO()
    writer.write(out)
    [result] = verify_document(out.getvalue(), pki().context(), NOW).seals
    assert (result.field_name, result.page) == ("課長", 1)


def test_a_page_tree_that_cannot_be_walked_is_refused_with_its_reason() -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf()))
    pages = writer.root["/Pages"]
    pages[pdf_name("/Kids")] = generic.ArrayObject([generic.NumberObject(7)])  # a number, not a page
    writer.update_container(pages)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ValidationError) as info:
        verify_document(out.getvalue(), pki().context(), NOW)
    assert str(info.value) == "the PDF cannot be read: AttributeError: 'NumberObject' object has no attribute 'get'"
