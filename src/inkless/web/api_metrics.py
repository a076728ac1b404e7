"""``GET /metrics`` on the main port: OpenMetrics for a bearer token with the ``metrics`` scope only.

Office tokens and browser sessions are refused (401): the figures are the node's, not an office's,
and a token that reads them opens nothing else. The unauthenticated listener is the separate
``metrics_listen`` address (see inkless.metrics.openmetrics).

``POST /federation/v1/metrics/aggregates`` takes a pinned peer's signed weekly aggregate (see
inkless.metrics.aggregates): the signature is the authentication.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.directory.tokens import METRICS_SCOPE
from inkless.errors import AuthenticationError, InklessError
from inkless.federation.httpsig import SignatureError
from inkless.metrics.aggregates import AGGREGATE_PATH, receive_aggregate
from inkless.metrics.openmetrics import exposition
from inkless.web.deps import get_node

router = APIRouter(include_in_schema=False)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


@router.get("/metrics")
async def openmetrics(request: Request, node: Annotated[Node, Depends(get_node)]) -> Response:
    """The node's OpenMetrics exposition."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip() or node.tokens is None:
        raise HTTPException(status_code=401, detail="a token with the metrics scope is required", headers=CHALLENGE)
    try:
        await run_in_threadpool(node.tokens.authenticate, secret.strip(), METRICS_SCOPE)
    except AuthenticationError:
        raise HTTPException(status_code=401, detail="a token with the metrics scope is required",
                            headers=CHALLENGE) from None
    body, content_type = await run_in_threadpool(exposition, node)
    return Response(body, media_type=content_type)


@router.post(AGGREGATE_PATH)
async def receive(request: Request, node: Annotated[Node, Depends(get_node)]) -> Response:
    """A pinned peer's signed weekly aggregate (the JWS is the body); answers how it was kept."""
    body = await request.body()
    try:
        jws = body.decode("ascii")
        outcome, stored = await run_in_threadpool(receive_aggregate, node, jws)
    except UnicodeDecodeError:
        return JSONResponse({"detail": "the body is not a compact JWS"}, status_code=422)
    except SignatureError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401)
    except InklessError as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.http_status)
    return JSONResponse({"outcome": outcome, "node_id": stored.node_id, "week": stored.week})
