"""Seal verification: pyHanko validates every signature of a PDF, we state the verdict in ETSI terms.

Each seal (and document timestamp) is validated in file order with pyHanko's
``async_validate_pdf_signature`` / ``async_validate_pdf_timestamp`` against the known node CAs
and this node's CRL, without network access. pyHanko's status fields (intact, valid, trusted,
revoked, coverage, difference analysis, DocMDP) are mapped to the ETSI EN 319 102-1 indications
PASSED / INDETERMINATE / FAILED with a sub-indication and a sentence a clerk can read.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.diff_analysis import DiffResult, ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    SignatureCoverageLevel,
    SignatureStatus,
)
from pyhanko_certvalidator import ValidationContext

from inkless import timefmt
from inkless.aio import run_on_thread_loop
from inkless.errors import ValidationError
from inkless.pki import asn1names  # noqa: F401  (pyHanko's OID names, known by name)
from inkless.seals.model import (
    Change,
    Indication,
    PadesLevel,
    SealResult,
    SubIndication,
    VerificationReport,
)

PADES_SUBFILTER = "/ETSI.CAdES.detached"
IMPRINT_DPI = 200

CHANGE_SENTENCES = {
    Change.NONE: "Nothing changed after this seal: it covers the whole file.",
    Change.LTA_UPDATES: "After this seal only validation data and document timestamps were added.",
    Change.FORM_FILLING: "After this seal only form fields were filled and further seals applied.",
    Change.ANNOTATIONS: "After this seal comments or annotations were added (the sealed content is unchanged).",
    Change.OTHER: "After this seal the document was changed beyond form filling and annotations "
                  "(page content, pages or images): what you see is not what was sealed.",
}


def verify_document(pdf: bytes, context: ValidationContext, now: datetime, *, with_imprints: bool = False,
                    crl_anchors: frozenset[str] = frozenset()) -> VerificationReport:
    """Verify every seal and document timestamp in ``pdf``; overall = the worst single verdict.

    ``crl_anchors`` names the trust anchors (CN) whose CRL is in ``context``: only seals chaining
    to one of them can be reported with revocation status "good" rather than "unknown".
    """
    return run_on_thread_loop(verify_document_async(pdf, context, now, with_imprints=with_imprints,
                                             crl_anchors=crl_anchors))


async def verify_document_async(pdf: bytes, context: ValidationContext, now: datetime, *,
                                with_imprints: bool = False,
                                crl_anchors: frozenset[str] = frozenset()) -> VerificationReport:
    """The async form of :func:`verify_document`."""
    sha = hashlib.sha256(pdf).hexdigest()
    reader = _open(pdf)
    try:
        embedded = list(reader.embedded_signatures)
    except Exception as exc:  # pyHanko on hostile input raises anything; translated at this boundary
        raise ValidationError("the PDF's signatures cannot be read: {detail}", detail=one_line(exc)) from exc
    try:
        # pyHanko reads objects lazily: a damaged page tree or DSS surfaces only here.
        pages = _page_numbers(reader)
        has_dss = _has_dss(reader)
    except Exception as exc:  # pyHanko on hostile input raises anything; translated at this boundary
        raise ValidationError("the PDF cannot be read: {detail}", detail=one_line(exc)) from exc
    doc_ts_revisions = [e.signed_revision for e in embedded if e.sig_object_type == "/DocTimeStamp"]
    results: list[SealResult] = []
    for index, sig in enumerate(embedded, start=1):
        results.append(await _verify_one(index, sig, context, pages, has_dss, doc_ts_revisions, crl_anchors))
    if with_imprints:
        results = [_with_imprint(pdf, r) for r in results]
    if not any(r.kind == "seal" for r in results):
        return VerificationReport(sha, tuple(results), Indication.INDETERMINATE, None,
                                  "The document carries no seals.", now)
    worst = max(results, key=lambda r: r.indication.severity)
    if worst.indication == Indication.PASSED:
        reason = f"All {len(results)} signature(s) passed."
    else:
        reason = f"Signature {worst.index} ({worst.field_name}): {worst.reason}"
    return VerificationReport(sha, tuple(results), worst.indication, worst.subindication, reason, now)


def _open(pdf: bytes) -> PdfFileReader:
    if not pdf.lstrip()[:5] == b"%PDF-":
        raise ValidationError("the file is not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        reader.root["/Pages"]
    except Exception as exc:  # any parser failure on a damaged file is the file's problem, said in one line
        raise ValidationError("the PDF cannot be read: {detail}", detail=one_line(exc)) from exc
    return reader


def one_line(exc: BaseException) -> str:
    """A third-party error as one line: its text with whitespace collapsed, or its type when it has none.

    Errors that only a bug would raise (AttributeError, IndexError …) keep their type name, so the
    finding is still precise ("AttributeError: module ... has no attribute '2.16.840.17…'").
    """
    text = " ".join(str(exc).split())
    expected = (PdfError, SignatureValidationError, ValidationError, ValueError)
    if not text:
        return type(exc).__name__
    return text if isinstance(exc, expected) else f"{type(exc).__name__}: {text}"


async def _verify_one(index: int, sig: EmbeddedPdfSignature, context: ValidationContext, pages: dict[int, int],
                      has_dss: bool, doc_ts_revisions: list[int], crl_anchors: frozenset[str]) -> SealResult:
    is_doc_ts = sig.sig_object_type == "/DocTimeStamp"
    subfilter = str(sig.sig_object.get("/SubFilter", ""))
    page, rect = _widget_location(sig, pages)
    base: dict[str, Any] = {
        "index": index, "field_name": sig.field_name or f"signature {index}",
        "kind": "document-timestamp" if is_doc_ts else "seal", "page": page, "rect": rect,
        "subfilter": subfilter.lstrip("/") or None,
    }
    status: PdfSignatureStatus | DocumentTimestampStatus
    try:
        if is_doc_ts:
            status = await async_validate_pdf_timestamp(sig, validation_context=context)
        else:
            status = await async_validate_pdf_signature(sig, signer_validation_context=context,
                                                        ts_validation_context=context)
    except Exception as exc:  # pyHanko on a damaged signature raises anything: one finding, not a traceback
        return SealResult(**base, indication=Indication.FAILED, subindication=SubIndication.FORMAT_FAILURE,
                          reason=f"The signature cannot be processed: {one_line(exc)}")
    cert = status.signing_cert
    names = _names(cert.subject)
    base.update(
        signer_name=names.get("common_name"), office=names.get("organizational_unit_name"),
        organisation=names.get("organization_name"), certificate_serial=format(cert.serial_number, "x"),
        intact=status.intact, valid=status.valid, trusted=status.trusted,
        trust_anchor=_anchor(status), coverage=status.coverage.name if status.coverage else None,
        docmdp_ok=status.docmdp_ok,
    )
    ts_time: datetime | None = None
    ts_problem: str | None = None
    if isinstance(status, DocumentTimestampStatus):
        ts_time = status.timestamp
        base["signing_time"] = status.timestamp
    else:
        base["signing_time"] = status.signer_reported_dt
        tsv = status.timestamp_validity
        if tsv is not None:
            ts_time = tsv.timestamp
            if not (tsv.intact and tsv.valid):
                ts_problem = "its timestamp token does not verify"
            elif not tsv.trusted:
                ts_problem = "its timestamp token is not from a trusted time-stamping authority"
    base["timestamp_time"] = ts_time
    change, changed_fields = _change(status)
    base["change"] = change
    base["changed_fields"] = changed_fields
    base["change_summary"] = CHANGE_SENTENCES[change] if change else ""
    if change and changed_fields:
        base["change_summary"] += " Fields changed: " + ", ".join(changed_fields) + "."
    base["certification"] = _certification(sig)
    if status.revoked:
        base["revocation"] = "revoked"
    elif status.trusted and base["trust_anchor"] in crl_anchors:
        base["revocation"] = "good"
    else:
        base["revocation"] = "unknown"
    base["pades_level"] = _pades_level(sig, subfilter, ts_time is not None and not is_doc_ts, has_dss,
                                       doc_ts_revisions)
    indication, sub, reason = _verdict(status, change, ts_problem, ts_time)
    return SealResult(**base, indication=indication, subindication=sub, reason=reason)


def _verdict(status: SignatureStatus, change: Change | None, ts_problem: str | None,
             ts_time: datetime | None) -> tuple[Indication, SubIndication | None, str]:
    # Order matters: a broken hash says more than an untrusted chain, and so on (EN 319 102-1 §5.1.3).
    if not status.intact:
        return (Indication.FAILED, SubIndication.HASH_FAILURE,
                "The sealed bytes were altered after sealing: their digest no longer matches the signed one.")
    if not status.valid:
        return (Indication.FAILED, SubIndication.SIG_CRYPTO_FAILURE,
                "The signature value does not verify with the signer's public key.")
    coverage = getattr(status, "coverage", None)
    if coverage is not None and coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        return (Indication.FAILED, SubIndication.FORMAT_FAILURE,
                "The signature does not cover its whole revision of the file.")
    docmdp_ok = getattr(status, "docmdp_ok", None)
    if change == Change.OTHER or docmdp_ok is False:
        return (Indication.FAILED, SubIndication.SIG_CONSTRAINTS_FAILURE,
                "The document was modified after this seal in a way a sealed document may not be "
                "(" + (CHANGE_SENTENCES[change] if change else "changes not permitted by the certification")
                + ")")
    if status.revoked:
        details = status.revocation_details
        when = details.revocation_date if details else None
        text = "The signer's certificate has been revoked"
        if when is not None:
            text += f" on {timefmt.format_datetime(when, 'en', seconds=True)}"
            if details is not None:
                text += f" ({details.revocation_reason.native})"
        if ts_time is not None and when is not None and ts_time < when:
            return (Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE,
                    text + "; the seal was timestamped before that "
                    f"({timefmt.format_datetime(ts_time, 'en', seconds=True)}), "
                    "but the revocation must be reviewed.")
        return Indication.FAILED, SubIndication.REVOKED, text + "."
    if not status.trusted:
        indic = status.trust_problem_indic
        sub = _sub(indic) or SubIndication.NO_CERTIFICATE_CHAIN_FOUND
        ind = Indication.FAILED if isinstance(indic, AdESFailure) else Indication.INDETERMINATE
        return (ind, sub, "The signer's certificate does not chain to a known inkless node CA "
                          f"({sub.value}).")
    if ts_problem is not None:
        return Indication.INDETERMINATE, SubIndication.NO_POE, f"The seal itself verifies, but {ts_problem}."
    return Indication.PASSED, None, ""


def _sub(indic: AdESFailure | AdESIndeterminate | Any) -> SubIndication | None:
    if indic is None:
        return None
    name = getattr(indic, "name", "")
    try:
        return SubIndication(name)
    except ValueError:
        return SubIndication.GENERIC


def _change(status: SignatureStatus) -> tuple[Change | None, tuple[str, ...]]:
    coverage = getattr(status, "coverage", None)
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return Change.NONE, ()
    diff = getattr(status, "diff_result", None)
    if isinstance(diff, SuspiciousModification):
        return Change.OTHER, ()
    if isinstance(diff, DiffResult):
        level = diff.modification_level
        fields = tuple(sorted(diff.changed_form_fields))
        return {
            ModificationLevel.NONE: Change.NONE,
            ModificationLevel.LTA_UPDATES: Change.LTA_UPDATES,
            ModificationLevel.FORM_FILLING: Change.FORM_FILLING,
            ModificationLevel.ANNOTATIONS: Change.ANNOTATIONS,
        }.get(level, Change.OTHER), fields
    return None, ()


def _certification(sig: EmbeddedPdfSignature) -> str | None:
    docmdp = sig.docmdp_level
    if docmdp is not None and sig.sig_object_type != "/DocTimeStamp":
        ref = sig.sig_object.get("/Reference")
        certifying = False
        if ref is not None:
            certifying = any(str(r.get_object().get("/TransformMethod")) == "/DocMDP" for r in ref)
        perm = {MDPPerm.NO_CHANGES: "no changes", MDPPerm.FILL_FORMS: "form filling",
                MDPPerm.ANNOTATE: "form filling and annotations"}.get(docmdp, str(docmdp))
        if certifying:
            return f"certifies the document (allowed afterwards: {perm})"
        return f"closing seal: locks the document (allowed afterwards: {perm})"
    return None


def _pades_level(sig: EmbeddedPdfSignature, subfilter: str, has_sig_ts: bool, has_dss: bool,
                 doc_ts_revisions: list[int]) -> PadesLevel:
    if sig.sig_object_type == "/DocTimeStamp":
        return PadesLevel.B_LTA if has_dss else PadesLevel.B_T
    if subfilter != PADES_SUBFILTER:
        return PadesLevel.NONE
    if not has_sig_ts:
        return PadesLevel.B_B
    if not has_dss:
        return PadesLevel.B_T
    if any(rev > sig.signed_revision for rev in doc_ts_revisions):
        return PadesLevel.B_LTA
    return PadesLevel.B_LT


def _has_dss(reader: PdfFileReader) -> bool:
    dss = reader.root.get("/DSS")
    if dss is None:
        return False
    dss = dss.get_object()
    return bool(dss.get("/Certs") or dss.get("/CRLs") or dss.get("/OCSPs"))


def _names(name: asn1_x509.Name) -> dict[str, str]:
    out: dict[str, str] = {}
    for rdn in name.chosen:
        for attr in rdn:
            out.setdefault(attr["type"].native, str(attr["value"].native))
    return out


def _anchor(status: SignatureStatus) -> str | None:
    path = status.validation_path
    if path is None or not status.trusted:
        return None
    try:
        name = path.trust_anchor.authority.name
    except (AttributeError, ValueError):
        return None
    return _names(name).get("common_name") or str(name.human_friendly)


def _page_numbers(reader: PdfFileReader) -> dict[int, int]:
    """Object number of each page → 1-based page number."""
    numbers: dict[int, int] = {}

    def walk(node: generic.PdfObject) -> None:
        for kid in node.get_object().get("/Kids", []):  # type: ignore[no-untyped-call]
            obj = kid.get_object()
            if obj.get("/Type") == "/Pages" or "/Kids" in obj:
                walk(obj)
            elif isinstance(kid, generic.IndirectObject):
                numbers[kid.idnum] = len(numbers) + 1

    walk(reader.root.raw_get("/Pages"))
    return numbers


def _widget_location(sig: EmbeddedPdfSignature, pages: dict[int, int]
                     ) -> tuple[int | None, tuple[float, float, float, float] | None]:
    field = sig.sig_field
    widget = field
    if "/Rect" not in field and "/Kids" in field:
        widget = field["/Kids"][0].get_object()
    rect_raw = widget.get("/Rect")
    if rect_raw is None:
        return None, None
    x1, y1, x2, y2 = (float(v) for v in rect_raw)
    rect = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    if rect[2] - rect[0] < 1 or rect[3] - rect[1] < 1:
        return None, None  # an invisible signature
    page_ref = widget.raw_get("/P") if "/P" in widget else None
    page = pages.get(page_ref.idnum) if isinstance(page_ref, generic.IndirectObject) else None
    return page, rect


def _with_imprint(pdf: bytes, result: SealResult) -> SealResult:
    from dataclasses import replace

    if result.page is None or result.rect is None:
        return result
    try:
        png = render_region(pdf, result.page, result.rect)
    except ValidationError:
        return result
    return replace(result, imprint_png=png)


def render_region(pdf: bytes, page_number: int, rect: tuple[float, float, float, float],
                  dpi: int = IMPRINT_DPI) -> bytes:
    """A PNG of ``rect`` on page ``page_number`` as pdfium draws it: the seal as a reader sees it."""
    import pypdfium2  # type: ignore[import-untyped, unused-ignore]

    from inkless.seals.imprint import _PDFIUM_LOCK, rgba_png

    with _PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(pdf)
        except pypdfium2.PdfiumError as exc:
            raise ValidationError("pdfium cannot open the PDF: {exc}", exc=exc) from exc
        try:
            page = document[page_number - 1]
            width, height = page.get_size()
            x1, y1, x2, y2 = rect
            crop = (max(0.0, x1), max(0.0, y1), max(0.0, width - x2), max(0.0, height - y2))
            # Forms must be drawn too: a seal is a signature widget, which pdfium draws as a form.
            document.init_forms()
            page = document[page_number - 1]
            # A transparent fill colour makes pdfium render with alpha: four bytes a pixel, RGBA once reversed.
            bitmap = page.render(scale=dpi / 72.0, crop=crop, may_draw_forms=True,
                                 fill_color=(255, 255, 255, 0), rev_byteorder=True)
            w, h, stride = int(bitmap.width), int(bitmap.height), int(bitmap.stride)
            buffer = bytes(bitmap.buffer)
            bitmap.close()
            page.close()
        finally:
            document.close()
    rows = [buffer[y * stride: y * stride + w * 4] for y in range(h)]
    return rgba_png(w, h, rows)
