"""The SMTP settings, addresses and mail composition: what an operator or a clerk gets wrong is refused with a
message naming the fix; what is right is parsed exactly."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inkless.config import load_settings
from inkless.errors import ConfigurationError, ValidationError
from inkless.mail.address import looks_like_email, normalise_email
from inkless.mail.compose import MailContent, compose
from inkless.mail.options import smtp_options

FROM = "市民課 <no-reply@city.example.jp>"


def options(tmp_path: Path, **values: object):  # type: ignore[no-untyped-def]
    settings = load_settings(tmp_path, env={}, overrides={"smtp_from": FROM, **values})
    return smtp_options(settings)


def test_no_smtp_url_means_no_mail(tmp_path: Path) -> None:
    o = smtp_options(load_settings(tmp_path, env={}))
    assert not o.enabled


def test_plain_smtp_upgrades_when_offered(tmp_path: Path) -> None:
    o = options(tmp_path, smtp_url="smtp://mail.city.example.jp")
    assert (o.host, o.port, o.implicit_tls, o.starttls, o.username) == ("mail.city.example.jp", 25, False, "auto", "")
    assert o.envelope_from == "no-reply@city.example.jp" and o.sender_domain == "city.example.jp"


def test_auth_requires_starttls_and_decodes_the_credentials(tmp_path: Path) -> None:
    o = options(tmp_path, smtp_url="smtp://inkless%40city:p%40ss%2Fword@mail.city.example.jp:587")
    assert (o.port, o.starttls, o.username, o.password) == (587, "require", "inkless@city", "p@ss/word")
    assert "p@ss" not in o.describe()


def test_smtps_is_tls_from_the_start_on_465(tmp_path: Path) -> None:
    o = options(tmp_path, smtp_url="smtps://u:p@mail.city.example.jp")
    assert (o.port, o.implicit_tls) == (465, True)


@pytest.mark.parametrize(("url", "message"), [
    ("http://mail.example.jp", "must start with smtp:// or smtps://"),
    ("smtp://", "names no server"),
    ("smtp://mail.example.jp:99999", "port"),
    ("smtp://mail.example.jp/x", "a path is not allowed"),
    ("smtp://mail.example.jp?tls=1", "unknown option 'tls'"),
    ("smtp://mail.example.jp?starttls=maybe", "must be one of auto, require, off"),
    ("smtp://u:p@mail.example.jp?starttls=off", "AUTH needs TLS"),
    ("smtps://mail.example.jp?starttls=require", "smtps:// is TLS from the start"),
    ("smtp://:secret@mail.example.jp", "a password without a user name"),
])
def test_bad_smtp_urls_are_refused_with_the_fix(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(tmp_path, env={}, overrides={"smtp_url": url, "smtp_from": FROM})


def test_smtp_from_is_required_and_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="smtp_from must be set"):
        load_settings(tmp_path, env={}, overrides={"smtp_url": "smtp://mail.example.jp"})
    with pytest.raises(ConfigurationError, match="smtp_from 'nobody' must be one e-mail address"):
        load_settings(tmp_path, env={}, overrides={"smtp_url": "smtp://mail.example.jp", "smtp_from": "nobody"})


def test_the_password_file_must_be_private_and_alone(tmp_path: Path) -> None:
    secret = tmp_path / "smtp.pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"readable by others .*chmod 600"):
        options(tmp_path, smtp_url="smtp://u@mail.example.jp", smtp_password_file="smtp.pw")
    secret.chmod(0o600)
    assert options(tmp_path, smtp_url="smtp://u@mail.example.jp", smtp_password_file="smtp.pw").password == "s3cret"
    with pytest.raises(ConfigurationError, match="use one of them"):
        options(tmp_path, smtp_url="smtp://u:p@mail.example.jp", smtp_password_file="smtp.pw")


@pytest.mark.parametrize("text", ["taro", "taro@", "@example.jp", "taro@localhost", "ta ro@example.jp",
                                  "taro@example.jp\nBcc: x@example.jp", "太郎@example.jp", "civil-affairs@moj",
                                  "a" * 65 + "@example.jp", "<taro@example.jp>"])
def test_malformed_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="not a valid e-mail address"):
        normalise_email(text)
    assert not looks_like_email(text)


def test_addresses_are_trimmed_and_their_domain_lower_cased() -> None:
    assert normalise_email("  Taro.Yamada+tax@Example.CO.JP ") == "Taro.Yamada+tax@example.co.jp"
    assert looks_like_email("taro@example.co.jp") and not looks_like_email("civil-affairs@moj")


def test_a_composed_mail_has_encoded_japanese_headers_and_two_alternatives() -> None:
    msg = compose(sender=FROM, recipient="taro@example.co.jp",
                  content=MailContent("お知らせ", "本文です。\n\nhttps://example.jp/p/x"),
                  at=datetime(2026, 12, 3, 8, 0, tzinfo=UTC), message_id="<abc@city.example.jp>")
    raw = msg.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "Subject: =?utf-8?b?" in head and "Date: Thu, 03 Dec 2026 08:00:00 +0000" in head
    assert "Message-ID: <abc@city.example.jp>" in head and "Auto-Submitted: auto-generated" in head
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(back["Subject"]) == "お知らせ"
    assert [p.get_content_type() for p in back.iter_parts()] == ["text/plain", "text/html"]


def test_a_line_break_in_a_header_is_refused() -> None:
    with pytest.raises(ValidationError, match="one line"):
        compose(sender=FROM, recipient="taro@example.co.jp", content=MailContent("件名\r\nBcc: x@example.jp", "x"),
                at=datetime(2026, 12, 3, tzinfo=UTC), message_id="<a@b.example>")
