"""Seal routes: ``/api/v1/seal`` and ``/api/v1/verify``; the TSA (``POST /tsa``) and ``/pki/trust-bundle.pem``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.errors import PolicyError, ValidationError
from inkless.seals.imprint import SealKind
from inkless.seals.model import SealPlacement
from inkless.seals.sealing import MAX_PDF_BYTES, SealingService
from inkless.seals.tsa import MAX_REQUEST_BYTES, TIMESTAMP_QUERY, TIMESTAMP_REPLY, NodeTimeStampAuthority
from inkless.web.deps import (
    Caller,
    WebServices,
    admit_anonymous,
    api_caller,
    client_address,
    get_node,
    get_services,
)
from inkless.web.pages import check_fresh_totp

router = APIRouter(tags=["seals"])  # mounted under /api/v1
public_router = APIRouter(tags=["seals"])  # /tsa and /pki/trust-bundle.pem, at the root

NodeDep = Annotated[Node, Depends(get_node)]
ApiCallerDep = Annotated[Caller, Depends(api_caller)]


def sealing_of(node: Node) -> SealingService:
    """The node's sealing service (503 if the node was built without one)."""
    if node.sealing is None:
        raise ValidationError("sealing is not available on this node")
    return node.sealing


async def read_pdf(upload: UploadFile, limit: int = MAX_PDF_BYTES) -> bytes:
    """The uploaded file, refused if it is larger than ``limit`` (by default what a sealable PDF may be)."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(f"the file is larger than {limit // (1024 * 1024)} MiB")
    if not data:
        raise ValidationError("the uploaded file is empty")
    return data


@router.post(
    "/seal",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The sealed PDF."}},
)
async def seal_document(
    request: Request,
    node: NodeDep,
    services: Annotated[WebServices, Depends(get_services)],
    caller: ApiCallerDep,
    file: Annotated[UploadFile, File(description="The PDF to seal.")],
    kind: Annotated[SealKind, Form()] = SealKind.PERSONAL,
    page: Annotated[int, Form(ge=1)] = 1,
    x: Annotated[float | None, Form(description="Lower-left corner, points from the left.")] = None,
    y: Annotated[float | None, Form(description="Lower-left corner, points from the bottom.")] = None,
    field_name: Annotated[str | None, Form(max_length=200)] = None,
    size_mm: Annotated[float | None, Form(gt=0)] = None,
    reason: Annotated[str | None, Form(max_length=200)] = None,
    totp: Annotated[str | None, Form(max_length=12, description="Required for the office seal.")] = None,
) -> Response:
    """Seal a PDF with the caller's own seal (or their office's 角印, which needs a fresh one-time code)."""
    service = sealing_of(node)
    pdf = await read_pdf(file)
    login = caller.user.login
    if kind == SealKind.OFFICE:
        # The office seal speaks for everyone in the office: the holder must prove presence again.
        if caller.user.role.value not in ("admin", "approver"):
            raise PolicyError("only approvers and administrators may use the office seal")
        if not totp:
            raise PolicyError("the office seal needs your current one-time code (field 'totp')")
        # Rate-limited and audited like every other one-time code.
        await asyncio.to_thread(check_fresh_totp, node, services, login, totp, client_address(request))
    if field_name:
        placement = SealPlacement(page=page, field_name=field_name)
    else:
        if x is None or y is None:
            raise ValidationError("give x and y (points from the lower-left corner) or field_name")
        placement = service.placement_at(login, kind, page, x, y, size_mm)
    sealed = await service.seal_async(pdf, login, kind, placement, actor=login, reason=reason, size_mm=size_mm)
    return Response(sealed, media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="sealed.pdf"'})


@router.post("/verify")
async def verify_document(
    request: Request, node: NodeDep, file: Annotated[UploadFile, File(description="The PDF to verify.")]
) -> dict[str, Any]:
    """Verify every seal of a PDF (public, no login; rate-limited per address, 429): the report and the verdict."""
    await run_in_threadpool(admit_anonymous, request, "verify")
    pdf = await read_pdf(file, node.settings.verify_max_bytes)
    # Anonymous: counted in the periodic tally, not one audit entry per stranger's upload.
    report = await sealing_of(node).verify_async(pdf, actor=None)
    return report.to_dict()


@public_router.post(
    "/tsa",
    response_class=Response,
    responses={200: {"content": {TIMESTAMP_REPLY: {}}, "description": "A DER TimeStampResp (RFC 3161)."}},
)
async def time_stamp(request: Request, node: NodeDep) -> Response:
    """The node's RFC 3161 time-stamping authority (HTTP transport as in RFC 3161 §3.4)."""
    await run_in_threadpool(admit_anonymous, request, "tsa")
    if request.headers.get("content-type", "").split(";")[0].strip() != TIMESTAMP_QUERY:
        return JSONResponse({"detail": f"send Content-Type: {TIMESTAMP_QUERY}"}, status_code=415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            break
    _ = node.sealing  # the node TSA is built with the sealing service, on first use
    tsa = node.extras.get("tsa")
    if not isinstance(tsa, NodeTimeStampAuthority):
        raise ValidationError("this node runs no time-stamping authority")
    return Response(tsa.answer(body, audited=False), media_type=TIMESTAMP_REPLY)


@public_router.get(
    "/pki/trust-bundle.pem",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}}},
    tags=["node"],
)
def trust_bundle(node: NodeDep) -> Response:
    """This node's CA and the pinned peers' CAs, as PEM: the trust roots for verifying seals with other tools."""
    anchors = sealing_of(node).trust_anchors()
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in anchors)
    return Response(pem, media_type="application/x-pem-file")
