"""HTML pages for seals: the public ``/verify`` page and the user's own seals (私の印鑑)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.errors import InklessError, ValidationError
from inkless.pageview import NotAPdfError, page_count, render_page
from inkless.seals.imprint import SealKind, render_png
from inkless.seals.model import Change, Indication, SubIndication
from inkless.seals.sealing import imprint_for
from inkless.seals.verify import CHANGE_SENTENCES
from inkless.web.api_seals import read_pdf, sealing_of
from inkless.web.deps import Caller, admit_anonymous, get_node, page_caller
from inkless.web.pages import RendererDep
from inkless.web.render import N_

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]

PREVIEW_DPI = 200
# Pages of a verified document, drawn into the report: readable on a screen, small enough to send inline.
VERIFY_DPI = 72

INDICATION_LABELS = {
    Indication.PASSED: N_("PASSED: the seal is valid"),
    Indication.INDETERMINATE: N_("INDETERMINATE: the seal cannot be confirmed"),
    Indication.FAILED: N_("FAILED: the seal is not valid"),
}
SUBINDICATION_LABELS = {
    SubIndication.HASH_FAILURE: N_("The sealed content was altered after sealing."),
    SubIndication.SIG_CRYPTO_FAILURE: N_("The signature value does not verify."),
    SubIndication.FORMAT_FAILURE: N_("The signature is malformed or does not cover the document."),
    SubIndication.SIG_CONSTRAINTS_FAILURE: N_("The document was changed after sealing in a way that is not allowed."),
    SubIndication.REVOKED: N_("The signer's certificate has been revoked."),
    SubIndication.REVOKED_NO_POE: N_("The signer's certificate was revoked after sealing; review needed."),
    SubIndication.NO_CERTIFICATE_CHAIN_FOUND: N_("The signer is not certified by a known inkless node."),
    SubIndication.NO_POE: N_("The time of sealing cannot be proven."),
}
CHANGE_LABELS = {
    Change.NONE: N_("Nothing changed after this seal: it covers the whole file."),
    Change.LTA_UPDATES: N_("After this seal only validation data and document timestamps were added."),
    Change.FORM_FILLING: N_("After this seal only form fields were filled and further seals applied."),
    Change.ANNOTATIONS: N_("After this seal comments or annotations were added (the sealed content is unchanged)."),
    Change.OTHER: N_("After this seal the document was changed beyond form filling and annotations "
                     "(page content, pages or images): what you see is not what was sealed."),
}
REVOCATION_LABELS = {
    "good": N_("not revoked (checked against this node's CRL)"),
    "revoked": N_("revoked"),
    "unknown": N_("unknown (no revocation data for this CA)"),
}
KIND_LABELS = {
    SealKind.PERSONAL: N_("Personal seal (認印)"),
    SealKind.DATE: N_("Date seal (日付印)"),
    SealKind.OFFICE: N_("Office seal (角印)"),
}
assert set(CHANGE_LABELS.values()) == set(CHANGE_SENTENCES.values())


def _seal_view(seal: Any) -> dict[str, Any]:
    return {
        "seal": seal,
        "imprint": ("data:image/png;base64," + base64.b64encode(seal.imprint_png).decode("ascii"))
        if seal.imprint_png else None,
        "verdict": INDICATION_LABELS[seal.indication],
        "why": SUBINDICATION_LABELS.get(seal.subindication) if seal.subindication else None,
        "change": CHANGE_LABELS.get(seal.change) if seal.change else None,
        "revocation": REVOCATION_LABELS.get(seal.revocation, seal.revocation),
    }


@router.get("/verify")
def verify_form(request: Request, render: RendererDep) -> Response:
    """The public verification page: upload a PDF, see every seal's verdict."""
    return render.render(request, "verify.html", active="verify")


@router.post("/verify")
async def verify_submit(
    request: Request, node: NodeDep, render: RendererDep, file: Annotated[UploadFile, File()]
) -> Response:
    """Verify the uploaded PDF and show the report (no login, rate-limited per address, tallied in the audit log)."""
    await run_in_threadpool(admit_anonymous, request, "verify")
    try:
        pdf = await read_pdf(file, node.settings.verify_max_bytes)
        # Anonymous: counted in the periodic tally, not one audit entry per stranger's upload.
        report = await sealing_of(node).verify_async(pdf, actor=None, with_imprints=True)
    except InklessError as exc:
        return render.render(request, "verify.html", status_code=exc.http_status, active="verify",
                             error=render.error_text(request, exc))
    # The document is not stored (the page promises it): its pages are drawn into the report itself.
    pages = await run_in_threadpool(_page_images, pdf)
    return render.render(
        request, "verify_report.html", active="verify", report=report, file_name=file.filename or "",
        page_images=pages,
        overall=INDICATION_LABELS[report.indication],
        overall_why=SUBINDICATION_LABELS.get(report.subindication) if report.subindication else None,
        seals=[_seal_view(s) for s in report.seals],
    )


def _page_images(pdf: bytes) -> list[str]:
    """Every page of the verified PDF as a data: URL (nothing kept on the node); empty if it has none."""
    try:
        count = page_count(pdf)
    except NotAPdfError:
        return []
    return ["data:image/png;base64," + base64.b64encode(render_page(pdf, n, VERIFY_DPI)).decode("ascii")
            for n in range(1, count + 1)]


@router.get("/seals")
def my_seals(request: Request, caller: CallerDep, render: RendererDep) -> Response:
    """私の印鑑: previews of the caller's personal and date seals and their office's seal."""
    kinds = [{"kind": k.value, "label": KIND_LABELS[k]} for k in SealKind]
    csrf = caller.session.csrf_token if caller.session else ""
    return render.render(request, "seals.html", caller=caller, csrf_token=csrf, active="seals", kinds=kinds)


@router.get("/seals/preview/{kind}.png")
def seal_preview(kind: str, node: NodeDep, caller: CallerDep) -> Response:
    """A PNG preview of the caller's seal of ``kind`` (personal, date, office) as it would be stamped today."""
    try:
        seal_kind = SealKind(kind)
    except ValueError:
        raise ValidationError(f"unknown seal kind {kind!r} (personal, date or office)") from None
    imprint = imprint_for(caller.user, caller.office.name, seal_kind, node.clock.now(), tz=node.settings.tz)
    return Response(render_png(imprint, dpi=PREVIEW_DPI), media_type="image/png",
                    headers={"Cache-Control": "private, no-store"})
