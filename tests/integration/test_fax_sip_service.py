"""What the fax service does with the SIP line's facts: voice calls logged as such, media / Call-ID /
gateway in the log, and the line's status on the FAX設定 page (in Japanese)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from inkless.fax.log import LOG_COLUMNS, log_line
from inkless.fax.model import CallResult
from inkless.fax.sip.register import RegistrationState
from inkless.fax.sip.status import LineStatusFile
from inkless.web.app import create_app
from tests.helpers.kamailio import free_udp_port
from tests.integration import test_fax_service as base
from tests.integration.test_fax_service import FaxNode, TestClient, _audit_count, _login

fax_node = base.fax_node  # the shared demo node per backend (a module-scoped fixture)
shared_fax_node = base.shared_fax_node  # fax_node builds on it


def test_a_voice_caller_is_logged_as_a_voice_call_not_an_error(fax_node: FaxNode) -> None:
    fax = fax_node.fax
    voice = CallResult(
        success=False, t30_code=-1, t30_text="voice call: no fax tones heard, hung up", pages_transferred=0,
        pages_expected=None, remote_ident=None, local_ident="0335804111", calling_number="0312340001",
        called_number="0335804111", sub_address=None, bit_rate=0, ecm=False, compression="", bad_rows=0,
        duration_s=30.2, started_at=datetime.now(UTC), media="g711", call_id="voice-1@127.0.0.1", voice=True)
    before = _audit_count(fax_node.node, "fax.voice_call")
    failures = _audit_count(fax_node.node, "fax.receive_failed")
    received = fax.receive(voice, "sip")
    assert received.status == "voice"
    assert _audit_count(fax_node.node, "fax.voice_call") == before + 1
    assert _audit_count(fax_node.node, "fax.receive_failed") == failures
    entry = fax.call(received.call_id)
    fields = dict(zip(LOG_COLUMNS, log_line(entry).split("\t"), strict=True))
    assert (fields["line"], fields["media"], fields["call_id"], fields["status"]) == (
        "sip", "g711", "voice-1@127.0.0.1", "voice")
    assert fields["reason"] == "voice call: no fax tones heard, hung up"


def test_the_fax_settings_page_shows_the_sip_line_status(fax_node: FaxNode) -> None:
    node = fax_node.node
    original = node.settings
    node.settings = dataclasses.replace(original, fax_line="sip")
    try:
        status = LineStatusFile(node.settings.data_dir / "fax" / "sip-status.json")
        # The status file is only read here: no socket is opened, but the addresses are free ones anyway.
        registrar, listen = f"sip:127.0.0.1:{free_udp_port()}", f"127.0.0.1:{free_udp_port()}"
        app = create_app(node)
        with TestClient(app) as admin:
            _login(admin, node, fax_node.clock, "yamada")
            assert "SIP回線が動いていません" in admin.get("/fax/admin").text
            status.write(RegistrationState(
                state="failed", registrar=registrar, last_error="401 Unauthorized: wrong password",
                failures=2), [], listen=listen, malformed=0)
            page = admin.get("/fax/admin").text
            assert 'data-registration="failed"' in page and "登録失敗" in page
            assert "401 Unauthorized: wrong password" in page
            expires = datetime(2026, 12, 3, 13, 0, tzinfo=UTC) + timedelta(seconds=300)
            status.write(RegistrationState(state="registered", registrar=registrar, expires_at=expires),
                         [{"call_id": "c1", "direction": "RECV", "number": "0312340001", "media": "t38",
                           "phase": "C", "page": 2, "pages": None, "bit_rate": 14400,
                           "started_at": "2026-12-03T13:00:00+00:00"}], listen=listen, malformed=0)
            page = admin.get("/fax/admin").text
            assert "登録済み" in page and "2026年12月3日 22:05:00 JST" in page  # expiry shown in JST
            assert "0312340001" in page and "t38" in page and "2/?" in page and "受信中" in page
        status.remove()
    finally:
        node.settings = original
