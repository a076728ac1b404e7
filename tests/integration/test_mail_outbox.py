"""The mail outbox against a real Postfix: queued in a transaction, sent by the worker pass over STARTTLS,
read back from Postfix's Maildir; permanent refusals (5xx) fail the mail, temporary ones are retried until
the mail expires; the listener of the mail's kind hears how it ended."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from inkless.app import Node, init_node
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.db.tables import audit_entries
from inkless.mail.compose import MailContent
from inkless.mail.outbox import MailStatus
from tests.helpers.nodes import refused_url
from tests.helpers.postfix import PrivatePostfix, postfix_available, running_postfix

pytestmark = pytest.mark.skipif(postfix_available() is not None, reason=str(postfix_available()))

SENDER = "浦安市 市民課 <no-reply@city.example.lg.jp>"


@pytest.fixture(scope="module")
def postfix() -> Iterator[PrivatePostfix]:
    with running_postfix(tls=True) as instance:
        yield instance


def make_node(tmp_path: Path, database_url: str, clock: FixedClock | None = None, **overrides: object) -> Node:
    values: dict[str, object] = {
        "node_id": "urayasu", "database_url": database_url, "base_url": refused_url(),
        "smtp_from": SENDER, "smtp_reply_to": "shimin@city.example.lg.jp",
        "mail_backoff_base_seconds": 60, "mail_expiry_hours": 1,
    }
    values.update(overrides)
    return init_node(load_settings(tmp_path / "node", env={}, overrides=values), clock)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def mail_node(tmp_path: Path, database_url: str, postfix: PrivatePostfix, clock: FixedClock) -> Iterator[Node]:
    assert postfix.ca_file is not None
    node = make_node(tmp_path, database_url, clock, smtp_url=postfix.smtp_url + "?starttls=require",
                     smtp_ca_file=str(postfix.ca_file))
    try:
        yield node
    finally:
        node.close()


def address(prefix: str = "taro") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.co.jp"


def queue(node: Node, to: str, kind: str = "test.notice", ref: str | None = None) -> MailStatus:
    assert node.mail is not None
    content = MailContent(subject="新着文書のお知らせ（浦安市 市民課）",
                          text="浦安市 市民課から文書が届いています。\n\nhttps://city.example.lg.jp/p/abc\n")
    with node.db.begin() as conn:
        return node.mail.enqueue(conn, kind=kind, recipient=to, content=content, ref=ref)


def actions(node: Node, object_id: int) -> list[str]:
    with node.db.read() as conn:
        rows = conn.execute(select(audit_entries.c.action).where(
            audit_entries.c.object_type == "mail", audit_entries.c.object_id == str(object_id))
            .order_by(audit_entries.c.idx)).all()
    return [r.action for r in rows]


def test_a_queued_mail_is_sent_by_the_worker_pass_over_starttls_with_japanese_headers(
        mail_node: Node, postfix: PrivatePostfix) -> None:
    assert mail_node.mail is not None
    to = address()
    queued = queue(mail_node, to, ref="pickup:1")
    assert queued.state == "queued"
    assert postfix.messages(to) == []  # nothing is sent while queuing
    result = mail_node.mail.deliver_due()
    assert (result.sent, result.failed, result.retrying) == (1, 0, 0)
    [msg] = postfix.wait_for(to)
    assert isinstance(msg, EmailMessage)
    # The subject went over the wire RFC 2047-encoded (see below) and decodes to the Japanese text.
    assert str(msg["Subject"]) == "新着文書のお知らせ（浦安市 市民課）"
    assert str(msg["From"]) == SENDER
    assert msg["From"].addresses[0].addr_spec == "no-reply@city.example.lg.jp"
    assert str(msg["Reply-To"]) == "shimin@city.example.lg.jp"
    assert msg["Message-ID"] == queued.message_id and queued.message_id.endswith("@city.example.lg.jp>")
    assert msg["Date"] is not None
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert list(msg.iter_attachments()) == []
    assert "浦安市 市民課から文書が届いています。" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert '<a href="https://city.example.lg.jp/p/abc">' in msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    # Postfix notes the TLS session in its Received header: STARTTLS was used.
    assert "using TLS" in " ".join(str(h) for h in msg.get_all("Received", []))
    with mail_node.db.read() as conn:
        [status] = mail_node.mail.for_ref(conn, "pickup:1")
    assert status.state == "sent" and status.sent_at is not None and status.smtp_code == 250
    assert mail_node.mail.message_bytes(status.id) is None  # the body is erased once sent
    assert actions(mail_node, status.id) == ["mail.sent"]
    assert mail_node.mail.deliver_due().total == 0  # sent once


def test_the_subject_is_encoded_on_the_wire(mail_node: Node, postfix: PrivatePostfix) -> None:
    assert mail_node.mail is not None
    to = address()
    status = queue(mail_node, to)
    raw = mail_node.mail.message_bytes(status.id)
    assert raw is not None
    header = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # every header is 7-bit ASCII
    assert "Subject: =?utf-8?b?" in header
    assert "From: =?utf-8?b?" in header and "<no-reply@city.example.lg.jp>" in header


def test_a_recipient_postfix_refuses_for_good_fails_and_the_listener_hears_it(
        mail_node: Node, postfix: PrivatePostfix) -> None:
    assert mail_node.mail is not None
    heard: list[MailStatus] = []

    def listener(conn: Connection, status: MailStatus) -> None:
        heard.append(status)

    mail_node.mail.listen("pickup.", listener)
    bounced, fine = address("bounce"), address()
    first = queue(mail_node, bounced, kind="pickup.notice", ref="pickup:7")
    queue(mail_node, fine, kind="other.notice")
    result = mail_node.mail.deliver_due()
    assert (result.sent, result.failed) == (1, 1)
    with mail_node.db.read() as conn:
        status = mail_node.mail.status(conn, first.id)
    assert status.state == "failed" and status.bounced
    assert status.smtp_code == 550 and "User unknown" in (status.last_error or "")
    assert [h.id for h in heard] == [first.id] and heard[0].state == "failed"  # only its kind's listener
    assert actions(mail_node, first.id) == ["mail.failed"]
    postfix.wait_for(fine)
    assert postfix.messages(bounced) == []
    mail_node.mail.deliver_due()
    with mail_node.db.read() as conn:
        assert mail_node.mail.status(conn, first.id).attempts == 1  # never retried


def test_a_temporary_refusal_is_retried_with_backoff_and_expires(
        mail_node: Node, postfix: PrivatePostfix, clock: FixedClock) -> None:
    assert mail_node.mail is not None
    busy = address("busy")
    status = queue(mail_node, busy, kind="pickup.code")
    assert mail_node.mail.deliver_due().retrying == 1
    with mail_node.db.read() as conn:
        after = mail_node.mail.status(conn, status.id)
    assert after.state == "retrying" and after.smtp_code == 450 and "busy" in (after.last_error or "")
    assert mail_node.mail.deliver_due().total == 0  # not due yet: backoff
    clock.advance(seconds=60)
    assert mail_node.mail.deliver_due().retrying == 1
    clock.advance(hours=1)
    assert mail_node.mail.deliver_due().expired == 1
    with mail_node.db.read() as conn:
        final = mail_node.mail.status(conn, status.id)
    assert final.state == "expired" and final.attempts == 2 and "busy" in (final.last_error or "")
    assert mail_node.mail.message_bytes(status.id) is None
    assert actions(mail_node, status.id) == ["mail.expired"]


def test_an_unreachable_server_keeps_the_mail_queued(tmp_path: Path, database_url: str) -> None:
    node = make_node(tmp_path, database_url, smtp_url=refused_url().replace("http://", "smtp://"))
    try:
        assert node.mail is not None
        status = queue(node, address())
        assert node.mail.deliver_due().retrying == 1
        with node.db.read() as conn:
            after = node.mail.status(conn, status.id)
        assert after.state == "retrying" and "cannot connect" in (after.last_error or "")
        assert node.mail.message_bytes(status.id) is not None  # kept for the next try
    finally:
        node.close()


def test_an_untrusted_certificate_is_not_accepted(tmp_path: Path, database_url: str, postfix: PrivatePostfix) -> None:
    # Without smtp_ca_file the test CA is unknown: STARTTLS fails verification and nothing is sent in clear.
    node = make_node(tmp_path, database_url, smtp_url=postfix.smtp_url)
    try:
        assert node.mail is not None
        to = address()
        status = queue(node, to)
        assert node.mail.deliver_due().retrying == 1
        with node.db.read() as conn:
            after = node.mail.status(conn, status.id)
        assert "CERTIFICATE_VERIFY_FAILED" in (after.last_error or "")
        assert postfix.messages(to) == []
    finally:
        node.close()


def test_without_smtp_url_mails_wait(tmp_path: Path, database_url: str) -> None:
    node = make_node(tmp_path, database_url)
    try:
        assert node.mail is not None and not node.mail.enabled
        status = queue(node, address())
        assert node.mail.deliver_due().retrying == 1
        with node.db.read() as conn:
            assert "smtp_url is not set" in (node.mail.status(conn, status.id).last_error or "")
    finally:
        node.close()


def test_a_malformed_address_is_refused_before_anything_is_queued(mail_node: Node) -> None:
    from inkless.errors import ValidationError

    assert mail_node.mail is not None
    before = len(mail_node.mail.recent())
    with pytest.raises(ValidationError, match="not a valid e-mail address"):
        queue(mail_node, "taro@example.co.jp\r\nBcc: everyone@example.jp")
    assert len(mail_node.mail.recent()) == before


def test_the_worker_task_sends_what_is_queued(mail_node: Node, postfix: PrivatePostfix) -> None:
    from inkless.mail.tasks import MAIL_TASK
    from inkless.workers import TASKS, _load_tasks

    _load_tasks()
    assert MAIL_TASK in TASKS  # every worker process runs it
    to = address()
    queue(mail_node, to)
    MAIL_TASK.run(mail_node)
    [msg] = postfix.wait_for(to)
    assert str(msg["Subject"]) == "新着文書のお知らせ（浦安市 市民課）"


def test_cli_test_mail_and_list(tmp_path: Path, postfix: PrivatePostfix) -> None:
    # The commands are the same on both backends (the outbox is tested on both above): SQLite only, for time.
    import json
    import os
    import subprocess
    import sys

    assert postfix.ca_file is not None
    node = make_node(tmp_path, f"sqlite:///{tmp_path / 'node' / 'inkless.db'}")
    node.close()
    inkless = str(Path(sys.executable).with_name("inkless"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    env.update({"INKLESS_SMTP_URL": postfix.smtp_url, "INKLESS_SMTP_CA_FILE": str(postfix.ca_file),
                "INKLESS_SMTP_FROM": SENDER})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([inkless, *args, "--data", str(tmp_path / "node")], capture_output=True, text=True,
                              env=env, check=False, timeout=60)

    to, bounced = address(), address("bounce")
    sent = run("mail", "test", "--to", to)
    assert sent.returncode == 0, sent.stderr
    assert f"to {to}: sent" in sent.stdout
    [msg] = postfix.wait_for(to)
    assert "テストメール" in str(msg["Subject"])
    refused = run("mail", "test", "--to", bounced)
    assert refused.returncode == 1 and "failed (550 5.1.1" in refused.stdout
    listed = json.loads(run("mail", "list", "--json").stdout)
    assert [(m["to"], m["state"], m["smtp_code"]) for m in listed] == [(bounced, "failed", 550), (to, "sent", 250)]


def test_smtp_auth_over_starttls_with_the_password_in_a_private_file(tmp_path: Path) -> None:
    # A submission server that takes mail only from authenticated senders (Cyrus SASL in Postfix).
    with running_postfix(auth=("inkless", "pa55-wörd")) as submission:
        assert submission.ca_file is not None
        (tmp_path / "node").mkdir()
        secret = tmp_path / "node" / "smtp.password"
        secret.write_text("pa55-wörd\n")
        secret.chmod(0o600)
        node = make_node(tmp_path, f"sqlite:///{tmp_path / 'node' / 'inkless.db'}",
                         smtp_url=submission.smtp_url.replace("smtp://", "smtp://inkless@"),
                         smtp_password_file="smtp.password", smtp_ca_file=str(submission.ca_file))
        try:
            assert node.mail is not None and node.mail.options.starttls == "require"
            to = address()
            queue(node, to)
            assert node.mail.deliver_due().sent == 1
            [msg] = submission.wait_for(to)
            received = " ".join(str(h) for h in msg.get_all("Received", []))
            assert "with ESMTPSA" in received and "using TLS" in received  # S: TLS, A: authenticated
        finally:
            node.close()
        # A wrong password is a problem of ours, not the recipient's: retried, never 不達.
        secret.write_text("wrong\n")
        node = make_node(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}",
                         smtp_url=submission.smtp_url.replace("smtp://", "smtp://inkless@"),
                         smtp_password_file=str(secret), smtp_ca_file=str(submission.ca_file))
        try:
            assert node.mail is not None
            status = queue(node, address())
            assert node.mail.deliver_due().retrying == 1
            with node.db.read() as conn:
                after = node.mail.status(conn, status.id)
            assert after.state == "retrying" and "login refused (535" in (after.last_error or "")
        finally:
            node.close()
