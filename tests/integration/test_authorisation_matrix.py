"""Who may call which route: every UI and API route of the app × five callers, with the exact answer.

The routes are read from the app's route table, so a route added without a row here fails
``test_every_route_has_a_row`` (listing the routes missing). Each route is called once by each
caller on objects that belong to the office ``civil-affairs`` (a message, an approval route,
a fax job, a delivered fax, an API token) or to nobody (an unroutable fax):

- ``anon``: no credentials at all;
- ``clerk``: tanaka, clerk of civil-affairs, the owning office;
- ``clerk2``: takahashi, clerk of criminal-affairs, another office;
- ``admin2``: yamada, administrator of the secretariat, another office;
- ``operator``: kanri, an administrator of civil-affairs itself (the node operator's account on the
  web: administrators administer the node, they do not read other offices' mail).

State-changing requests carry the session's CSRF token and an empty body: an allowed caller
gets the validation answer (422) or the action's own answer, a refused caller the refusal.
The UI and the API are checked alike: e.g. a fax job report answers 404 outside the office in
both, for administrators too. Statuses are exact: a row never accepts "403 or 404".
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from inkless.app import Node, build_node
from inkless.clock import FixedClock
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.fax import imaging
from inkless.fax.loopback import LoopbackLine
from inkless.fax.model import CallResult
from inkless.fax.service import FaxService
from inkless.seals.routes import StepPlan
from inkless.web.app import create_app
from tests.helpers.faxdocs import three_page_pdf
from tests.helpers.seals import sample_pdf

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

PASSWORD = "hikari-no-michi-2026"
ACTORS = ("anon", "clerk", "clerk2", "admin2", "operator")
LOGINS = {"clerk": "tanaka", "clerk2": "takahashi", "admin2": "yamada", "operator": "kanri"}
CIVIL_NUMBER = "03-3580-4111"

# method, path template → status for (anon, clerk, clerk2, admin2, operator).
# The objects: {message_id} a message to civil-affairs, {route_id} its approval route (step 1 waits for
# sato), {job_id} its fax job (with a report), {call_id} the unroutable fax ("[call]": a fax delivered to
# civil-affairs), {token_id} tanaka's API token, {rule_id}/{entry_id} a fax routing rule / block entry,
# {code} civil-affairs, {node_id} a node that is not pinned,
# {login} tanaka (a user of civil-affairs), {index} audit entry 0.
EXPECTED: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    #                                                            anon clerk clerk2 admin2 operator
    ('GET', '/'): (303, 303, 303, 303, 303),
    # The admin console: clerks get 403 on every page and action; an office administrator (admin2, of the
    # secretariat) gets 403 on civil-affairs' users, offices and tokens; node-wide sections (peers, audit
    # log) are for every administrator. Empty forms are refused (422) or change nothing (409).
    ('GET', '/admin'): (303, 403, 403, 200, 200),
    ('GET', '/admin/audit'): (303, 403, 403, 200, 200),
    ('GET', '/admin/audit/{index}'): (303, 403, 403, 200, 200),
    ('POST', '/admin/audit/verify'): (303, 403, 403, 200, 200),
    ('GET', '/admin/offices'): (303, 403, 403, 200, 200),  # each administrator sees their own offices
    ('POST', '/admin/offices'): (303, 403, 403, 422, 422),  # (a filled-in form from an office admin: 403)
    ('GET', '/admin/offices/{code}'): (303, 403, 403, 403, 200),
    ('POST', '/admin/offices/{code}'): (303, 403, 403, 403, 422),
    ('POST', '/admin/offices/{code}/cover'): (303, 403, 403, 403, 303),
    ('POST', '/admin/offices/{code}/intake'): (303, 403, 403, 403, 422),  # neither open=1 nor open=0: nothing changes
    ('GET', '/admin/offices/{code}/seal'): (303, 403, 403, 403, 404),  # no seal image uploaded
    ('POST', '/admin/offices/{code}/seal'): (303, 403, 403, 403, 422),
    ('GET', '/admin/peers'): (303, 403, 403, 200, 200),
    ('POST', '/admin/peers'): (303, 403, 403, 422, 422),
    ('POST', '/admin/peers/inspect'): (303, 403, 403, 422, 422),
    ('POST', '/admin/peers/{node_id}/refresh'): (303, 403, 403, 404, 404),
    ('POST', '/admin/peers/{node_id}/unpin'): (303, 403, 403, 422, 422),  # not confirmed
    ('GET', '/admin/tokens'): (303, 403, 403, 200, 200),
    ('POST', '/admin/tokens/{token_id}/revoke'): (303, 403, 403, 403, 422),
    ('GET', '/admin/users'): (303, 403, 403, 200, 200),
    ('POST', '/admin/users'): (303, 403, 403, 422, 422),
    ('GET', '/admin/users/{login}'): (303, 403, 403, 403, 200),
    ('POST', '/admin/users/{login}/change'): (303, 403, 403, 403, 422),
    ('POST', '/admin/users/{login}/deactivate'): (303, 403, 403, 403, 422),
    ('POST', '/admin/users/{login}/lock'): (303, 403, 403, 403, 422),
    ('POST', '/admin/users/{login}/reactivate'): (303, 403, 403, 403, 409),  # already active
    ('POST', '/admin/users/{login}/reset-totp'): (303, 403, 403, 403, 422),
    ('POST', '/admin/users/{login}/unlock'): (303, 403, 403, 403, 409),  # not locked
    ('GET', '/api/v1/audit/entries'): (401, 403, 403, 200, 200),  # the node's audit log is for administrators
    ('GET', '/api/v1/audit/proof/consistency'): (422, 422, 422, 422, 422),
    ('GET', '/api/v1/audit/proof/inclusion'): (422, 422, 422, 422, 422),
    ('GET', '/api/v1/audit/tree-head'): (200, 200, 200, 200, 200),
    ('GET', '/api/v1/audit/witnesses'): (401, 403, 403, 200, 200),
    ('GET', '/compose'): (303, 200, 200, 200, 200),
    # OpenMetrics on the main port: only a token with the metrics scope (tests/integration/test_openmetrics.py)
    ('GET', '/metrics'): (401, 401, 401, 401, 401),
    # migration metrics: everyone their own office, administrators the node (the items need a figure: 422)
    ('GET', '/dashboard'): (303, 200, 200, 200, 200),
    ('GET', '/dashboard/procedures'): (303, 200, 200, 200, 200),
    ('GET', '/dashboard/who-faxes'): (303, 200, 200, 200, 200),
    ('GET', '/dashboard/items'): (303, 422, 422, 422, 422),
    ('GET', '/dashboard/government'): (303, 403, 403, 200, 200),  # the hub's table: administrators
    # a peer's signed aggregate: the signature is the credential (an empty body is no signed document)
    ('POST', '/federation/v1/metrics/aggregates'): (401, 401, 401, 401, 401),
    ('GET', '/dashboard/export/{table}'): (303, 200, 200, 200, 200),
    ('POST', '/dashboard/paper'): (303, 422, 422, 422, 422),
    ('POST', '/dashboard/classify'): (303, 422, 422, 422, 422),
    ('POST', '/compose'): (303, 422, 422, 422, 422),
    ('GET', '/fax'): (303, 200, 200, 200, 200),
    ('GET', '/fax/admin'): (303, 403, 403, 200, 200),
    ('POST', '/fax/admin/blocks'): (303, 403, 403, 422, 422),
    ('POST', '/fax/admin/blocks/{entry_id}/delete'): (303, 403, 403, 404, 404),
    # the unroutable fax: administrators decide where it goes
    ('GET', '/fax/admin/calls/{call_id}/image'): (303, 403, 403, 200, 200),
    # a fax delivered to civil-affairs: its mail, not the admins'
    ('GET', '/fax/admin/calls/{call_id}/image [call]'): (303, 403, 403, 404, 404),
    ('POST', '/fax/admin/offices/{code}/cover'): (303, 403, 403, 303, 303),  # fax settings are node-wide administration
    ('POST', '/fax/admin/offices/{code}/fallback'): (303, 403, 403, 303, 303),
    ('POST', '/fax/admin/rules'): (303, 403, 403, 422, 422),
    ('POST', '/fax/admin/rules/{rule_id}/delete'): (303, 403, 403, 404, 404),
    ('POST', '/fax/admin/unroutable/{call_id}/assign'): (303, 403, 403, 404, 404),
    ('GET', '/api/v1/fax/blocks'): (401, 403, 403, 200, 200),
    ('POST', '/api/v1/fax/blocks'): (401, 403, 403, 422, 422),
    ('DELETE', '/api/v1/fax/blocks/{entry_id}'): (401, 403, 403, 204, 404),
    # administrators see every call's metadata, never its pages
    ('GET', '/api/v1/fax/calls'): (401, 200, 200, 200, 200),
    ('GET', '/api/v1/fax/jobs'): (401, 200, 200, 200, 200),
    ('POST', '/api/v1/fax/jobs'): (401, 422, 422, 422, 422),
    ('GET', '/api/v1/fax/jobs/{job_id}'): (401, 200, 404, 404, 200),
    ('GET', '/api/v1/fax/jobs/{job_id}/attempts'): (401, 200, 404, 404, 200),
    # administrators of other offices too: the report shows page 1
    ('GET', '/fax/jobs/{job_id}/report'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/fax/jobs/{job_id}/report'): (401, 200, 404, 404, 200),
    ('GET', '/fax/log'): (303, 200, 200, 200, 200),
    ('PUT', '/api/v1/fax/offices/{code}/fallback'): (401, 403, 403, 200, 200),
    ('GET', '/api/v1/fax/rules'): (401, 403, 403, 200, 200),
    ('POST', '/api/v1/fax/rules'): (401, 403, 403, 422, 422),
    ('DELETE', '/api/v1/fax/rules/{rule_id}'): (401, 403, 403, 204, 404),
    ('POST', '/fax/send'): (303, 422, 422, 422, 422),
    ('GET', '/api/v1/fax/unroutable'): (401, 403, 403, 200, 200),
    ('POST', '/api/v1/fax/unroutable/{call_id}/assign'): (401, 403, 403, 404, 404),
    ('GET', '/federation/v1/directory'): (401, 401, 401, 401, 401),
    # Secure pickup: the recipient's pages answer strangers alike whether a link exists or not (an unknown
    # token is refused the same way for everyone); the sender's actions need a login.
    ('GET', '/notices'): (303, 200, 200, 200, 200),
    ('POST', '/notices'): (303, 200, 200, 200, 200),
    ('GET', '/p/{token}'): (200, 200, 200, 200, 200),
    ('POST', '/p/{token}/code'): (200, 200, 200, 200, 200),
    ('POST', '/p/{token}/open'): (422, 422, 422, 422, 422),
    ('GET', '/p/{token}/documents/{number}'): (404, 404, 404, 404, 404),
    ('POST', '/p/{token}/reply'): (404, 404, 404, 404, 404),
    ('GET', '/pickups/replies/{reply_id}'): (303, 422, 422, 422, 422),
    ('POST', '/pickups/{pickup_id}/reopen'): (303, 422, 422, 422, 422),
    ('POST', '/pickups/{pickup_id}/revoke'): (303, 422, 422, 422, 422),
    ('POST', '/federation/v1/audit/cosignatures'): (401, 401, 401, 401, 401),  # a witness signs its request
    ('GET', '/federation/v1/audit/witnessed/{node_id}'): (401, 401, 401, 401, 401),
    ('POST', '/federation/v1/messages'): (401, 401, 401, 401, 401),
    ('GET', '/federation/v1/node'): (200, 200, 200, 200, 200),
    ('GET', '/healthz'): (200, 200, 200, 200, 200),
    ('GET', '/api/v1/lists'): (401, 200, 200, 200, 200),
    ('POST', '/api/v1/lists'): (401, 422, 422, 422, 422),
    ('GET', '/login'): (200, 303, 303, 303, 303),
    # 409: no login over a live session; 401 for the stranger's empty form.
    ('POST', '/login'): (401, 409, 409, 409, 409),
    ('GET', '/login/enrol'): (303, 303, 303, 303, 303),
    ('POST', '/login/enrol'): (303, 303, 303, 303, 303),
    ('GET', '/login/password'): (303, 303, 303, 303, 303),
    ('POST', '/login/password'): (303, 303, 303, 303, 303),
    ('GET', '/login/totp'): (303, 303, 303, 303, 303),
    ('POST', '/login/totp'): (303, 303, 303, 303, 303),
    ('POST', '/logout'): (303, 303, 303, 303, 303),
    # One's own sessions only: an unknown reference is 404 in the API, a quiet redirect on the page.
    ('GET', '/sessions'): (303, 200, 200, 200, 200),
    ('GET', '/api/v1/sessions'): (401, 200, 200, 200, 200),
    ('POST', '/sessions/{ref}/end'): (303, 303, 303, 303, 303),
    ('DELETE', '/api/v1/sessions/{ref}'): (401, 404, 404, 404, 404),
    ('POST', '/api/v1/sessions/end-all'): (401, 200, 200, 200, 200),
    # After the API row above ended every session: the page sends everyone to the login.
    ('POST', '/sessions/end-all'): (303, 303, 303, 303, 303),
    ('GET', '/api/v1/me'): (401, 200, 200, 200, 200),
    ('POST', '/api/v1/messages'): (401, 422, 422, 422, 422),
    ('GET', '/messages/{message_id}'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/messages/{message_id}'): (401, 200, 404, 404, 200),
    ('GET', '/messages/{message_id}/documents/{number}'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/messages/{message_id}/documents/{number}'): (401, 200, 404, 404, 200),
    ('GET', '/messages/{message_id}/documents/{number}/pages/{page}.png'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/messages/{message_id}/documents/{number}/pages/{page}.png'): (401, 200, 404, 404, 200),
    ('POST', '/api/v1/messages/{message_id}/forward'): (401, 422, 404, 404, 422),
    ('POST', '/api/v1/messages/{message_id}/reply'): (401, 422, 404, 404, 422),  # looked up before the upload
    ('GET', '/messages/{message_id}/report'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/messages/{message_id}/replies'): (401, 200, 404, 404, 200),
    ('GET', '/api/v1/messages/{message_id}/report'): (401, 200, 404, 404, 200),
    ('GET', '/api/v1/messages/{message_id}/status'): (401, 200, 404, 404, 200),
    ('GET', '/api/v1/offices'): (401, 200, 200, 200, 200),
    # Pickers: every signed-in caller finds offices, people and fax numbers (their own office's book).
    ('GET', '/directory/search'): (303, 200, 200, 200, 200),
    ('GET', '/api/v1/directory/search'): (401, 200, 200, 200, 200),
    # The procedure the caller's own office last chose for a counterpart (nothing of another office's).
    ('GET', '/procedures/remembered'): (303, 200, 200, 200, 200),
    ('GET', '/offices/{code}/inbox'): (303, 200, 403, 403, 200),
    # Polled by the page: JSON, so no login redirect; the session is read without being extended.
    ('GET', '/offices/{code}/inbox/unread.json'): (401, 200, 403, 403, 200),
    ('GET', '/api/v1/offices/{code}/inbox'): (401, 200, 403, 403, 200),
    ('GET', '/offices/{code}/sent'): (303, 200, 403, 403, 200),
    ('GET', '/api/v1/offices/{code}/sent'): (401, 200, 403, 403, 200),
    ('GET', '/api/v1/peers'): (401, 403, 403, 200, 200),
    ('POST', '/api/v1/peers'): (401, 403, 403, 422, 422),
    ('DELETE', '/api/v1/peers/{node_id}'): (401, 403, 403, 404, 404),
    ('POST', '/api/v1/peers/{node_id}/refresh'): (401, 403, 403, 404, 404),
    ('GET', '/pki/ca.pem'): (200, 200, 200, 200, 200),
    ('GET', '/pki/crl'): (200, 200, 200, 200, 200),
    ('GET', '/pki/trust-bundle.pem'): (200, 200, 200, 200, 200),
    ('GET', '/routes'): (303, 200, 200, 200, 200),
    ('POST', '/routes'): (303, 422, 422, 422, 422),
    ('POST', '/api/v1/routes'): (401, 422, 422, 422, 422),
    ('GET', '/routes/new'): (303, 200, 200, 200, 200),
    ('GET', '/api/v1/routes/queue'): (401, 200, 200, 200, 200),
    ('GET', '/routes/{route_id}'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/routes/{route_id}'): (401, 200, 404, 404, 200),
    ('GET', '/api/v1/routes/{route_id}/document'): (401, 200, 404, 404, 200),
    ('GET', '/routes/{route_id}/document.pdf'): (303, 200, 404, 404, 200),
    ('POST', '/routes/{route_id}/office-seal'): (303, 401, 404, 404, 401),  # 401: the wrong one-time code
    # 401: the wrong one-time code, after the route check
    ('POST', '/api/v1/routes/{route_id}/office-seal'): (401, 401, 404, 404, 401),
    ('GET', '/routes/{route_id}/preview.png'): (303, 200, 404, 404, 200),
    ('GET', '/routes/{route_id}/pages/{page}.png'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/routes/{route_id}/pages/{page}.png'): (401, 200, 404, 404, 200),
    ('GET', '/routes/{route_id}/versions/{version}'): (303, 200, 404, 404, 200),
    ('GET', '/routes/{route_id}/versions/{version}.pdf'): (303, 200, 404, 404, 200),
    ('GET', '/routes/{route_id}/versions/{version}/pages/{page}.png'): (303, 200, 404, 404, 200),
    ('GET', '/api/v1/routes/{route_id}/versions/{version}/document'): (401, 200, 404, 404, 200),
    # Only the starter of a returned route uploads a corrected version; the form needs a file first.
    ('POST', '/routes/{route_id}/resubmit'): (303, 422, 404, 404, 422),
    ('POST', '/api/v1/routes/{route_id}/resubmit'): (401, 422, 422, 422, 422),
    ('POST', '/routes/{route_id}/reject'): (303, 422, 404, 404, 422),
    ('POST', '/api/v1/routes/{route_id}/reject'): (401, 403, 404, 404, 403),
    ('POST', '/routes/{route_id}/return'): (303, 422, 404, 404, 422),
    ('POST', '/api/v1/routes/{route_id}/return'): (401, 403, 404, 404, 403),
    ('POST', '/routes/{route_id}/stamp'): (303, 403, 404, 404, 403),
    ('POST', '/api/v1/routes/{route_id}/stamp'): (401, 403, 404, 404, 403),
    ('POST', '/api/v1/seal'): (401, 422, 422, 422, 422),
    ('GET', '/seals'): (303, 200, 200, 200, 200),
    ('GET', '/seals/preview/{kind}.png'): (303, 200, 200, 200, 200),
    ('GET', '/tokens'): (303, 403, 403, 200, 200),
    ('POST', '/tokens'): (303, 403, 403, 422, 422),
    ('GET', '/api/v1/tokens'): (401, 200, 200, 200, 200),
    ('POST', '/api/v1/tokens'): (401, 422, 422, 422, 422),
    # The token pages are for administrators and integrators; a clerk revokes their own token by the API.
    ('DELETE', '/api/v1/tokens/{token_id}'): (401, 200, 404, 404, 404),
    ('POST', '/tokens/{token_id}/revoke'): (303, 403, 403, 404, 404),
    ('POST', '/tsa'): (415, 415, 415, 415, 415),  # public; 415 without the timestamp-query content type
    # The public intake window (civil-affairs' window is closed here: its polite page).
    ('GET', '/i/{office}'): (303, 303, 303, 303, 303),
    ('GET', '/intake/{office}'): (200, 200, 200, 200, 200),
    ('POST', '/intake/{office}'): (200, 200, 200, 200, 200),
    ('GET', '/intake/{office}/qr.svg'): (200, 200, 200, 200, 200),
    ('POST', '/intake/{office}/confirm'): (422, 422, 422, 422, 422),
    ('POST', '/intake/{office}/certificate'): (422, 422, 422, 422, 422),
    ('GET', '/intake/{office}/status'): (200, 200, 200, 200, 200),
    ('POST', '/intake/{office}/status'): (422, 422, 422, 422, 422),
    ('POST', '/intake/{office}/status/confirm'): (422, 422, 422, 422, 422),
    # 招待FAXを送る: the unroutable fax is nobody's office's; the delivered one is civil-affairs' (422: its window
    # is closed); a message that did not come by fax has no number to invite (422).
    ('POST', '/fax/calls/{call_id}/invite'): (303, 404, 404, 404, 404),
    ('POST', '/fax/calls/{call_id}/invite [call]'): (303, 422, 404, 404, 422),
    ('POST', '/messages/{message_id}/invite'): (303, 422, 404, 404, 422),
    ('GET', '/verify'): (200, 200, 200, 200, 200),
    ('POST', '/verify'): (422, 422, 422, 422, 422),
    ('POST', '/api/v1/verify'): (422, 422, 422, 422, 422),
}


def all_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.extend((method, prefix + route.path) for method in sorted(route.methods))
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes, prefix + route.include_context.prefix)

    walk(list(app.router.routes), "")
    return found


@dataclasses.dataclass
class World:
    node: Node
    clock: FixedClock
    ids: dict[str, str]


@pytest.fixture
def world(node: Node, demo: DemoSample) -> Iterator[World]:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(seconds=now.timestamp() % 30) + timedelta(seconds=10))
    n = build_node(node.settings, clock)
    try:
        n.directory.add_user("kanri", "civil-affairs", "admin", 3, "管理 一郎", actor="test")
        fax = FaxService(n.db, n.blobs, clock, n.audit, n.directory, n.node_id, delivery=lambda: n.delivery,
                         ocr=lambda pdf: (pdf, False))
        n.fax = fax
        assert n.delivery is not None and n.routes is not None
        msg = n.delivery.send("tanaka", "civil-affairs", ["civil-affairs@moj"], [], "照会の件",
                              [NewDocument("a.pdf", sample_pdf())], classification=0)
        n.delivery.deliver_due()
        route = n.routes.start(sample_pdf(), "tanaka", [StepPlan("係長", ("sato",))], document_name="起案.pdf")
        job = fax.send("tanaka", "civil-affairs", "06-1234-5678", [three_page_pdf()])
        # One attempt on a line whose far end does not answer: the job gets its transmission report.
        sockets = Path(tempfile.mkdtemp(prefix="inkmatrix-"))
        fax.run_due_jobs(LoopbackLine(sockets / "node.sock", sockets / "nobody.sock"))
        shutil.rmtree(sockets, ignore_errors=True)
        assert fax.job(job).has_report
        delivered = fax.receive(_received(CIVIL_NUMBER), "loopback")
        unroutable = fax.receive(_received("0355550000"), "loopback")
        rule = fax.add_rule("cid", "0120.*", "secretariat", 5, actor="test")
        block = fax.add_block("cid", "0120-444-444", "junk", actor="test")
        tokens = n.tokens
        assert tokens is not None
        token = tokens.create("tanaka", "civil-affairs", "matrix", None, actor="test")
        with n.db.begin() as conn:
            n.audit.sign_tree_head(conn, n.pki)
        yield World(n, clock, {
            "msg": msg, "route": str(route.id), "job": str(job), "call": str(delivered.call_id),
            "unroutable": str(unroutable.call_id), "token": str(token.token.id), "rule": str(rule.id),
            "block": str(block.id), "code": "civil-affairs", "peer": "nowhere",
        })
    finally:
        n.close()


def _received(did: str) -> CallResult:
    return CallResult(
        success=True, t30_code=0, t30_text="OK", pages_transferred=3, pages_expected=None, remote_ident="REMOTE",
        local_ident="NODE", calling_number="0798-11-2222", called_number=did, sub_address=None, bit_rate=9600,
        ecm=False, compression="T.4 1D MH", bad_rows=0, duration_s=30.0,
        started_at=datetime(2026, 4, 1, 9, 0, tzinfo=UTC), received_tiff=imaging.pdf_to_tiff(three_page_pdf()),
    )


def _browser(world: World, actor: str) -> tuple[TestClient, str]:
    """A browser logged in as ``actor`` (password and TOTP through the pages); its CSRF token."""
    import re

    client = TestClient(create_app(world.node), follow_redirects=False)
    if actor == "anon":
        return client, ""
    login = LOGINS[actor]
    directory = world.node.directory
    secret = directory.totp_secret(login)
    directory.verify_totp(login, pyotp.TOTP(secret).at(world.clock.now() - timedelta(seconds=30)))
    directory.set_password(login, PASSWORD, actor="test")
    page = client.post("/login", data={"login": login, "password": PASSWORD})
    assert page.status_code == 303 and page.headers["location"] == "/login/totp", page.text
    form = client.get("/login/totp")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    done = client.post("/login/totp", data={"code": pyotp.TOTP(secret).at(world.clock.now()),
                                            "csrf_token": csrf.group(1)})
    assert done.status_code == 303, done.text
    inbox = client.get(done.headers["location"])
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', inbox.text)
    assert fresh, inbox.text
    return client, fresh.group(1)


def _concrete(path: str, ids: dict[str, str]) -> str:
    return (path.replace("{message_id}", ids["msg"]).replace("{route_id}", ids["route"])
            .replace("{job_id}", ids["job"]).replace("{token_id}", ids["token"]).replace("{rule_id}", ids["rule"])
            .replace("{entry_id}", ids["block"]).replace("{code}", ids["code"]).replace("{node_id}", ids["peer"])
            .replace("{ref}", "no-such-session").replace("{number}", "1").replace("{version}", "1")
            .replace("{page}", "1").replace("{index}", "0")
            .replace("{kind}", "personal").replace("{login}", "tanaka").replace("{office}", ids["code"])
            .replace("{table}", "weeks"))


def _call_path(method: str, path: str, ids: dict[str, str]) -> str:
    if "{call_id}" in path:
        # The image route and the assign routes work on the unroutable queue; the image of a delivered
        # fax is checked as its own row below.
        path = path.replace("{call_id}", ids["unroutable"])
    return _concrete(path, ids)


# Extra rows on concrete objects that the route table alone does not name.
EXTRA: list[tuple[str, str, str]] = [
    ("GET", "/fax/admin/calls/{call_id}/image", "call"),
    ("POST", "/fax/calls/{call_id}/invite", "call"),
]


# Routes that end the caller's sessions, called in this order after all others.
ENDING = [("POST", "/api/v1/sessions/end-all"), ("POST", "/sessions/end-all"), ("POST", "/logout")]


# Bodies that reach the office check of API routes (an empty body would be refused by validation first)
# and change nothing for an allowed caller.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    # Step 1 waits for sato, who is none of the callers: nobody here may stamp, return or reject.
    ("POST", "/api/v1/routes/{route_id}/stamp"): {"json": {"kind": "personal"}},
    ("POST", "/api/v1/routes/{route_id}/return"): {"json": {"comment": "確認"}},
    ("POST", "/api/v1/routes/{route_id}/reject"): {"json": {"comment": "確認"}},
    ("POST", "/api/v1/routes/{route_id}/office-seal"): {"json": {"totp": "x"}},
    ("POST", "/api/v1/messages/{message_id}/forward"): {"json": {"to": []}},
    ("POST", "/api/v1/fax/unroutable/{call_id}/assign"): {"json": {"office": "no-such-office"}},
    ("PUT", "/api/v1/fax/offices/{code}/fallback"): {"json": {"enabled": False}},
}


def _observe(world: World) -> dict[tuple[str, str], tuple[int, ...]]:
    # Signing out everywhere and logging out end the sessions: last.
    app_routes = [r for r in all_routes(create_app(world.node)) if r not in ENDING]
    browsers = {actor: _browser(world, actor) for actor in ACTORS}
    observed: dict[tuple[str, str], tuple[int, ...]] = {}
    rows = [(m, p, None) for m, p in app_routes] + [(m, p, which) for m, p, which in EXTRA]
    rows += [(m, p, None) for m, p in ENDING]
    for method, template, which in rows:
        if which is not None:
            path = _concrete(template.replace("{call_id}", world.ids[which]), world.ids)
            key = (method, template + f" [{which}]")
        else:
            path = _call_path(method, template, world.ids)
            key = (method, template)
        statuses = []
        for actor in ACTORS:
            client, csrf = browsers[actor]
            headers = {"X-CSRF-Token": csrf} if csrf and method not in ("GET", "HEAD") else {}
            answer = client.request(method, path, headers=headers, **BODIES.get((method, template), {}))
            statuses.append(answer.status_code)
        observed[key] = tuple(statuses)
    return observed


def test_every_route_has_a_row(world: World) -> None:
    served = set(all_routes(create_app(world.node)))
    unknown = sorted(served - set(EXPECTED))
    assert not unknown, "routes without a row in the authorisation matrix: " + ", ".join(
        f"{m} {p}" for m, p in unknown)
    gone = sorted(k for k in set(EXPECTED) - served if "[" not in k[1])
    assert not gone, f"rows for routes the app no longer serves: {gone}"


def test_authorisation_matrix(world: World) -> None:
    observed = _observe(world)
    wrong = {key: (EXPECTED.get(key), got) for key, got in observed.items() if EXPECTED.get(key) != got}
    if wrong:
        lines = [f"    {key!r}: {got!r},  # expected {want!r}" for key, (want, got) in sorted(wrong.items())]
        pytest.fail("authorisation matrix differs (route: observed, expected):\n" + "\n".join(lines))
