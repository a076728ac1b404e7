"""Registration with a SIP registrar (RFC 3261 §10): digest auth, refresh before expiry, retry with backoff."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from inkless.errors import SipMessageError
from inkless.fax.sip.message import NameAddr, SipMessage, SipUri, new_branch, new_tag
from inkless.fax.sip.ua import Credentials, SipTimeout, UserAgent, out_of_dialog_request

log = logging.getLogger("inkless.fax.sip")

REQUESTED_EXPIRES = 300
BACKOFF_S = (2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True)
class RegistrationState:
    """What ``inkless fax line status`` shows about the registration."""

    state: str = "unregistered"  # unregistered | registering | registered | failed
    registrar: str = ""
    expires_at: datetime | None = None
    registered_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0


class Registration:
    """Keeps one binding alive at the registrar; ``on_change`` gets every new state."""

    def __init__(
        self, ua: UserAgent, registrar: SipUri, credentials: Credentials | None, *,
        on_change: Callable[[RegistrationState], None],
    ) -> None:
        self.ua = ua
        self.registrar = registrar
        self.credentials = credentials
        self.on_change = on_change
        self.state = RegistrationState(registrar=str(registrar))
        self.call_id = secrets.token_hex(12) + "@inkless"
        self.tag = new_tag()
        self._task: asyncio.Task[None] | None = None
        self._cseq = 0

    def start(self) -> None:
        self._task = self.ua.loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception) as exc:  # stopping: whatever it was doing is over
                log.debug("registration task ended: %r", exc)
        if self.state.state == "registered":
            try:  # remove the binding so the registrar stops sending calls here
                await asyncio.wait_for(self._register(0), 2.0)
            except (TimeoutError, SipTimeout, OSError) as exc:
                log.info("could not remove the registration at %s: %r", self.registrar, exc)

    def _set(self, **changes: object) -> None:
        self.state = replace(self.state, **changes)  # type: ignore[arg-type]
        self.on_change(self.state)

    async def _run(self) -> None:
        failures = 0
        while True:
            self._set(state="registering" if self.state.state != "registered" else "registered")
            try:
                expires, error = await self._register(REQUESTED_EXPIRES)
            except SipTimeout:
                expires, error = None, f"no answer from the registrar {self.registrar}"
            except OSError as exc:
                expires, error = None, f"cannot reach the registrar {self.registrar}: {exc}"
            now = datetime.now(UTC)
            if expires:
                failures = 0
                self._set(state="registered", expires_at=now + timedelta(seconds=expires), registered_at=now,
                          last_error=None, failures=0)
                # Refresh well before expiry (half-way, and at least 5 s early), as phones do.
                await asyncio.sleep(max(1.0, min(expires / 2, expires - 5)))
                continue
            failures += 1
            log.warning("SIP registration at %s failed: %s", self.registrar, error)
            self._set(state="failed", last_error=error, failures=failures, expires_at=None)
            await asyncio.sleep(BACKOFF_S[min(failures - 1, len(BACKOFF_S) - 1)])

    async def _register(self, expires: int) -> tuple[int | None, str | None]:
        user = self.credentials.username if self.credentials else ""
        aor = f"<sip:{user}@{self.registrar.host}>"
        contact = self.ua.contact(user)

        def build(cseq_step: int) -> SipMessage:
            self._cseq += 1
            message = out_of_dialog_request(
                "REGISTER", f"sip:{self.registrar.host}" + (f":{self.registrar.port}" if self.registrar.port else ""),
                via=self.ua.via, from_=f"{aor};tag={self.tag}", to=aor, call_id=self.call_id, cseq=self._cseq,
                contact=contact, branch=new_branch())
            message.add("Expires", str(expires))
            return message

        _request, response = await self.ua.request_with_auth(build, self.registrar.address(), self.credentials)
        status = response.status or 0
        if 200 <= status < 300:
            if expires == 0:
                return 0, None
            granted = _granted_expires(response, contact) or expires
            return granted, None
        if status in (401, 407):
            return None, (f"{status} {response.reason}: the registrar refused the credentials "
                          "(check fax_sip_username / fax_sip_password)")
        if status == 423:
            minimum = response.get("Min-Expires")
            return None, f"423 Interval Too Brief (Min-Expires {minimum})"
        return None, f"{status} {response.reason}"


def _granted_expires(response: SipMessage, contact: str) -> int | None:
    wanted = NameAddr.parse(contact).uri
    for value in response.values("Contact"):
        try:
            bound = NameAddr.parse(value)
        except SipMessageError:  # a binding of someone else that we cannot parse is not ours
            log.debug("ignored an unparsable Contact in a REGISTER response: %.80s", value)
            continue
        if bound.uri.host == wanted.host and bound.uri.port == wanted.port:
            text = bound.param("expires")
            if text and text.isdigit():
                return int(text)
    header = response.get("Expires")
    return int(header) if header and header.isdigit() else None
