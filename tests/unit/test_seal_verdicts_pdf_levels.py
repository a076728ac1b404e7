"""More reports of PDFs sealed in memory: PAdES levels with validation data, certification, changes after a
seal, a revocation after a timestamp, and the async entry point (see test_seal_verdicts_pdf.py)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko_certvalidator import ValidationContext

from inkless.seals.model import Change, Indication, PadesLevel, SubIndication
from inkless.seals.verify import CHANGE_SENTENCES, verify_document, verify_document_async
from tests.helpers.seals import sample_pdf
from tests.unit.test_seal_verdicts_pdf import BOX, NOW, Pki, _asn1, document_timestamp, pki, seal, sealed


def _seal_with(pdf: bytes, field: str, **meta: object) -> bytes:
    out = io.BytesIO()
    metadata = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                            subfilter=SigSeedSubFilter.PADES, **meta)  # type: ignore[arg-type]
    signers.PdfSigner(metadata, pki().seal, timestamper=pki().tsa,
                      new_field_spec=SigFieldSpec(sig_field_name=field, on_page=0, box=(400, 100, 434, 134))
                      ).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=out)
    return out.getvalue()


def test_the_async_form_draws_no_imprint_unless_asked() -> None:
    report = asyncio.run(verify_document_async(sealed(), pki().context(), NOW))
    [result] = report.seals
    assert (result.indication, result.imprint_png) == (Indication.PASSED, None)


def test_validation_data_makes_a_timestamped_seal_b_lt_and_a_document_timestamp_b_lta() -> None:
    pdf = _seal_with(sample_pdf(), "課長", embed_validation_info=True, validation_context=pki().context())
    [result] = verify_document(pdf, pki().context(), NOW).seals
    assert (result.indication, result.pades_level) == (Indication.PASSED, PadesLevel.B_LT)
    report = verify_document(document_timestamp(pdf), pki().context(), NOW)
    assert [(r.kind, r.pades_level) for r in report.seals] == [
        ("seal", PadesLevel.B_LTA), ("document-timestamp", PadesLevel.B_LTA)]
    # Without validation data: a document timestamp is B-T, and the seal under it too.
    report = verify_document(document_timestamp(seal(sample_pdf(), "課長", timestamp=True)), pki().context(), NOW)
    assert [(r.kind, r.pades_level) for r in report.seals] == [
        ("seal", PadesLevel.B_T), ("document-timestamp", PadesLevel.B_T)]


def test_a_certifying_seal_says_what_it_allows() -> None:
    pdf = _seal_with(sample_pdf(), "課長", certify=True, docmdp_permissions=MDPPerm.FILL_FORMS)
    [result] = verify_document(pdf, pki().context(), NOW).seals
    assert result.certification == "certifies the document (allowed afterwards: form filling)"
    assert result.indication == Indication.PASSED


def test_the_first_seal_names_every_field_filled_after_it() -> None:
    pdf = seal(seal(seal(sample_pdf(), "課長"), "部長", box=(100.0, 100.0, 150.0, 140.0)), "局長",
               box=(200.0, 100.0, 250.0, 140.0))
    first, second, third = verify_document(pdf, pki().context(), NOW).seals
    assert first.changed_fields == ("局長", "部長")
    assert first.change_summary == CHANGE_SENTENCES[Change.FORM_FILLING] + " Fields changed: 局長, 部長."
    assert (second.changed_fields, third.change) == (("局長",), Change.NONE)


def test_page_content_changed_after_a_seal_fails_it() -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed()))
    page = writer.root["/Pages"]["/Kids"][0]
    page[pdf_name("/Contents")] = writer.add_object(generic.StreamObject(
        stream_data=b"BT /F1 18 Tf 72 780 Td (Request for payment) Tj ET\n"))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    [result] = verify_document(out.getvalue(), pki().context(), NOW).seals
    assert (result.indication, result.subindication, result.change) == (
        Indication.FAILED, SubIndication.SIG_CONSTRAINTS_FAILURE, Change.OTHER)
    assert result.reason == ("The document was modified after this seal in a way a sealed document may not be ("
                             + CHANGE_SENTENCES[Change.OTHER] + ")")
    assert (result.page, result.rect) == (1, BOX)


def test_a_revocation_after_the_seals_timestamp_asks_for_review() -> None:
    revoking = Pki.create("moj CA", crl_url="http://moj.invalid/crl")
    # The seal's timestamp is taken now (the TSA's clock), not when this module was loaded.
    start = datetime.now(UTC).replace(microsecond=0)
    revoked_at = start + timedelta(minutes=5)
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(revoking.ca.subject)
        .last_update(start).next_update(start + timedelta(days=7))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(0x1234AB)
                                 .revocation_date(revoked_at).build())
        .sign(revoking.ca_key, hashes.SHA256())
    )
    later = start + timedelta(minutes=10)
    context = ValidationContext(trust_roots=[_asn1(revoking.ca)], allow_fetching=False, moment=later,
                                crls=[asn1_crl.CertificateList.load(crl.public_bytes(serialization.Encoding.DER))])
    pdf = seal(sample_pdf(), "課長", timestamp=True, by=revoking)
    [result] = verify_document(pdf, context, later).seals
    assert (result.indication, result.subindication, result.revocation) == (
        Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE, "revoked")
    assert result.reason.endswith("but the revocation must be reviewed.")
