"""The fax_sip_* settings: every mistake is refused with the key named and the fix said."""

from __future__ import annotations

from pathlib import Path

import pytest

from inkless.config import load_settings
from inkless.errors import ConfigurationError
from inkless.fax.sip.options import sip_options

SIP = {"INKLESS_FAX_LINE": "sip"}


def test_defaults_are_valid(tmp_path: Path) -> None:
    options = sip_options(load_settings(tmp_path, env=SIP))
    assert options.listen == ("0.0.0.0", 5060) and options.registrar is None
    assert options.rtp_ports == (20000, 20999) and options.t38 == "accept" and options.codecs == ("PCMU", "PCMA")
    assert options.trusted == ("127.0.0.0/8", "::1/128")  # nothing configured: loopback only


def test_trusted_sources_default_to_the_registrar_and_gateways(tmp_path: Path) -> None:
    options = sip_options(load_settings(tmp_path, env={
        **SIP, "INKLESS_FAX_SIP_REGISTRAR": "sip:192.0.2.1:5060", "INKLESS_FAX_SIP_USERNAME": "0312345678",
        "INKLESS_FAX_SIP_GATEWAYS": "sip:192.0.2.2, sip:192.0.2.3:5070"}))
    assert options.trusted == ("192.0.2.2", "192.0.2.3", "192.0.2.1")
    assert [str(g) for g in options.outbound_targets] == ["sip:192.0.2.2", "sip:192.0.2.3:5070"]


@pytest.mark.parametrize(("env", "message"), [
    ({"INKLESS_FAX_SIP_LISTEN": "5060"}, "fax_sip_listen"),
    ({"INKLESS_FAX_SIP_LISTEN": "example.org:5060"}, "must be an IP address"),
    ({"INKLESS_FAX_SIP_REGISTRAR": "http://192.0.2.1"}, "fax_sip_registrar"),
    ({"INKLESS_FAX_SIP_REGISTRAR": "sip:192.0.2.1"}, "fax_sip_username is needed"),
    ({"INKLESS_FAX_SIP_GATEWAYS": "sip:192.0.2.1,sip:user@192.0.2.2"}, "must not contain a user part"),
    ({"INKLESS_FAX_SIP_RTP_PORTS": "20000"}, "LOW-HIGH"),
    ({"INKLESS_FAX_SIP_RTP_PORTS": "20000-20003", "INKLESS_FAX_MAX_CALLS": "30"}, "fewer ports than fax_max_calls"),
    ({"INKLESS_FAX_SIP_RTP_PORTS": "80-90"}, "1024 <= LOW"),
    ({"INKLESS_FAX_SIP_T38": "maybe"}, "prefer, accept, off"),
    ({"INKLESS_FAX_SIP_CODECS": "PCMU,G729"}, "PCMU and/or PCMA"),
    ({"INKLESS_FAX_SIP_TRUSTED_SOURCES": "192.0.2.1,trunk.example"}, "not an IP address or network"),
])
def test_bad_sip_settings_are_named(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(tmp_path, env={**SIP, **env})


def test_the_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "sip-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    env = {**SIP, "INKLESS_FAX_SIP_PASSWORD_FILE": "sip-password"}
    with pytest.raises(ConfigurationError, match=r"readable by others \(mode 0644\).*chmod 600"):
        load_settings(tmp_path, env=env)
    secret.chmod(0o600)
    assert sip_options(load_settings(tmp_path, env=env)).password == "s3cret"
    with pytest.raises(ConfigurationError, match="not both"):
        load_settings(tmp_path, env={**env, "INKLESS_FAX_SIP_PASSWORD": "other"})
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_settings(tmp_path, env={**SIP, "INKLESS_FAX_SIP_PASSWORD_FILE": "missing"})


def test_sip_settings_are_checked_on_every_line_but_the_secret_only_for_sip(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="fax_sip_t38"):
        load_settings(tmp_path, env={"INKLESS_FAX_SIP_T38": "maybe"})
    # A password file that is not there yet does not stop a loopback node.
    load_settings(tmp_path, env={"INKLESS_FAX_SIP_PASSWORD_FILE": "later"})
