"""A person calls the fax number: baresip dials B's number through Kamailio and plays recorded speech.
The SIP line answers, listens for fax tones for a bounded time, hangs up, and reports a voice call."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.config import load_settings
from inkless.fax.model import CallResult
from inkless.fax.sip import line as sip_line
from inkless.fax.sip.line import SipLine
from tests.helpers.kamailio import Kamailio, free_udp_port, running_kamailio

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

NUMBER = "0335804111"
PASSWORD = "pw-voice-4111"
VOICE_TIMEOUT_S = 8.0  # the line's bound, shortened for the test


def _speech_wav(path: Path) -> Path:
    """A few seconds of synthetic speech, 8 kHz mono 16-bit (what a telephone carries)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "ja", "-s", "140", "-w", str(raw),
                    "もしもし、ファクスの件でお電話しました。担当の方はいらっしゃいますか。"] * 1, check=True,
                   capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path), "repeat", "6"], check=True,
                   capture_output=True)
    return path


def _baresip_config(folder: Path, wav: Path, kamailio: Kamailio) -> Path:
    folder.mkdir()
    modules = "/usr/lib/baresip/modules"
    (folder / "config").write_text(
        f"module_path {modules}\n"
        f"sip_listen 127.0.0.1:{free_udp_port()}\n"
        "audio_player aufile,/dev/null\n"
        f"audio_source aufile,{wav}\n"
        "audio_alert aufile,/dev/null\n"
        "module g711.so\nmodule aufile.so\n"
        "module_app account.so\nmodule_app menu.so\n"
    )
    (folder / "accounts").write_text(f"<sip:0312340001@127.0.0.1:{kamailio.port}>;regint=0;audio_codecs=PCMU\n")
    (folder / "contacts").write_text("")
    return folder


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    with running_kamailio(tmp_path / "kamailio", {NUMBER: PASSWORD}) as k:
        yield k


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is installed by scripts/install-system-deps")
def test_a_voice_caller_is_answered_listened_to_and_hung_up(
        tmp_path: Path, kamailio: Kamailio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sip_line, "VOICE_TIMEOUT_S", VOICE_TIMEOUT_S)
    data = tmp_path / "node"
    data.mkdir()
    settings = load_settings(data, env={
        "INKLESS_FAX_LINE": "sip", "INKLESS_FAX_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
        "INKLESS_FAX_SIP_REGISTRAR": kamailio.uri, "INKLESS_FAX_SIP_USERNAME": NUMBER,
        "INKLESS_FAX_SIP_PASSWORD": PASSWORD, "INKLESS_FAX_SIP_RTP_PORTS": "42000-42099",
        "INKLESS_FAX_SIP_TRUSTED_SOURCES": "127.0.0.1",
    })
    line = SipLine(settings)
    results: list[CallResult] = []
    line.listen(results.append)
    config = _baresip_config(tmp_path / "baresip", _speech_wav(tmp_path / "speech.wav"), kamailio)
    log = tmp_path / "baresip.log"
    try:
        deadline = time.monotonic() + 30
        while line.registration.state != "registered":
            assert time.monotonic() < deadline, line.registration
            time.sleep(0.1)
        with log.open("wb") as out:
            caller = subprocess.Popen(
                ["baresip", "-f", str(config), "-e", f"/dial sip:{NUMBER}@127.0.0.1:{kamailio.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            started = time.monotonic()
            while not results:
                assert time.monotonic() - started < VOICE_TIMEOUT_S + 30, log.read_text()
                time.sleep(0.2)
            elapsed = time.monotonic() - started
        finally:
            caller.terminate()
            caller.wait(timeout=10)
    finally:
        line.close()
    [result] = results
    assert result.voice and result.pages_transferred == 0 and not result.success
    assert result.media == "g711" and result.t30_text.startswith("voice call")
    assert result.calling_number == "0312340001" and result.called_number == NUMBER
    assert VOICE_TIMEOUT_S - 1 <= result.duration_s <= VOICE_TIMEOUT_S + 10 and elapsed < VOICE_TIMEOUT_S + 20
    # baresip saw the call answered and then closed by the far end (our BYE).
    text = log.read_text(errors="replace")
    assert "established" in text.lower() or "call established" in text.lower(), text
