"""The SIP line registers at a real Kamailio (digest auth), shows why when it is refused, and registers
again by itself after the registrar restarts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.config import load_settings
from inkless.fax.sip.line import SipLine
from inkless.fax.sip.status import read_status
from tests.helpers.kamailio import Kamailio, free_udp_port, running_kamailio

NUMBER = "0335804111"
PASSWORD = "pw-4111-secret"


@pytest.fixture(params=["MD5", "SHA-256"])
def kamailio(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Kamailio]:
    """Kamailio challenging with MD5, and with SHA-256 (RFC 8760)."""
    with running_kamailio(tmp_path / "kamailio", {NUMBER: PASSWORD}, max_expires=20,
                          algorithm=str(request.param)) as k:
        yield k


def _line(tmp_path: Path, kamailio: Kamailio, password: str) -> SipLine:
    data = tmp_path / "node"
    data.mkdir(exist_ok=True)
    settings = load_settings(data, env={
        "INKLESS_FAX_LINE": "sip", "INKLESS_FAX_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
        "INKLESS_FAX_SIP_REGISTRAR": kamailio.uri, "INKLESS_FAX_SIP_USERNAME": NUMBER,
        "INKLESS_FAX_SIP_PASSWORD": password, "INKLESS_FAX_SIP_RTP_PORTS": "30000-30999",
        "INKLESS_FAX_SIP_GATEWAYS": kamailio.uri,
    })
    return SipLine(settings)


def _wait_for(line: SipLine, state: str, limit: float = 30.0, after: object = None) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        reg = line.registration
        if reg.state == state and (after is None or (reg.registered_at is not None and reg.registered_at > after)):
            return
        time.sleep(0.1)
    raise AssertionError(f"registration is {line.registration}, wanted {state}")


def test_registers_with_digest_and_shows_it_in_the_status(tmp_path: Path, kamailio: Kamailio) -> None:
    line = _line(tmp_path, kamailio, PASSWORD)
    line.listen(lambda _result: None)
    try:
        _wait_for(line, "registered")
        time.sleep(1.5)  # the status file is rewritten every second
        status = read_status(tmp_path / "node")
        assert status["running"] is True
        reg = status["registration"]
        assert reg["state"] == "registered" and reg["registrar"] == kamailio.uri and reg["last_error"] is None
        assert reg["expires_at"] is not None
        # The line answered the challenge with the algorithm the registrar asked for.
        assert f"algorithm={kamailio.algorithm}" in kamailio.log_text()
    finally:
        line.close()
    assert read_status(tmp_path / "node")["running"] is False


def test_wrong_password_is_refused_and_the_status_says_why(tmp_path: Path, kamailio: Kamailio) -> None:
    line = _line(tmp_path, kamailio, "not-the-password")
    line.listen(lambda _result: None)
    try:
        _wait_for(line, "failed")
        reg = line.registration
        assert reg.last_error is not None and reg.last_error.startswith("401")
        assert "fax_sip_password" in reg.last_error
        time.sleep(1.5)
        on_disk = json.loads((tmp_path / "node" / "fax" / "sip-status.json").read_text())
        assert on_disk["registration"]["state"] == "failed"
        assert on_disk["registration"]["last_error"] == reg.last_error
    finally:
        line.close()


def test_registers_again_by_itself_after_the_registrar_restarts(tmp_path: Path, kamailio: Kamailio) -> None:
    line = _line(tmp_path, kamailio, PASSWORD)
    line.listen(lambda _result: None)
    try:
        _wait_for(line, "registered")
        first = line.registration.registered_at
        kamailio.restart()  # the registrar forgets every binding (usrloc in memory)
        # Kamailio grants at most 20 s: the line refreshes within 10 s and binds again, unprompted.
        _wait_for(line, "registered", limit=40.0, after=first)
        assert line.registration.last_error is None
    finally:
        line.close()


def test_a_number_nobody_answers_is_no_answer_for_the_retry_schedule(tmp_path: Path, kamailio: Kamailio) -> None:
    from inkless.errors import FaxError
    from inkless.fax.line import NO_ANSWER
    from tests.helpers.faxdocs import simple_fax_tiff

    line = _line(tmp_path, kamailio, PASSWORD)
    line.listen(lambda _result: None)
    try:
        _wait_for(line, "registered")
        # Kamailio has no binding for this number (404): no fax session, the job is retried later.
        with pytest.raises(FaxError) as refused:
            line.dial("0399990000", simple_fax_tiff(1, rows=300), ident=NUMBER, header=None)
        assert refused.value.message == NO_ANSWER
    finally:
        line.close()
