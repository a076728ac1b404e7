"""A private Postfix for tests and benchmarks: its own configuration, queue and data folders, smtpd on a free
loopback port, started with ``postfix -c DIR`` and stopped afterwards. Never the system's service or port 25.

Two sinks:

- ``maildir`` (tests): every accepted mail is delivered by Postfix's own ``virtual`` agent into one Maildir
  under the instance's folder, where :meth:`PrivatePostfix.messages` reads it.
- ``discard`` (the delivery benchmark): every mail is accepted into the queue and discarded.

Chosen recipients are refused at ``RCPT TO``, as a real mail domain refuses an unknown user:

- local part ``bounce-…`` → ``550 5.1.1`` (permanent: the mail is 不達),
- local part ``busy-…`` → ``450 4.2.1`` (temporary: the sender retries),
- and any address given in ``rejected``.

``auth=(user, password)`` requires SMTP AUTH (Cyrus SASL with a private sasldb, Debian's ``sasl2-bin``)
over STARTTLS. ``tls=True`` gives smtpd a certificate (for 127.0.0.1, from a throw-away CA whose PEM is
:attr:`PrivatePostfix.ca_file`) and offers STARTTLS; the Received header then names the TLS version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

POSTFIX = "/usr/sbin/postfix"

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.test.localdomain
mydomain = test.localdomain
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = {allow}, reject
smtpd_recipient_restrictions = check_recipient_access regexp:{conf}/recipients, {allow}, reject
queue_directory = {queue}
data_directory = {data}
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
message_size_limit = 0
smtputf8_enable = no
biff = no
alias_maps =
alias_database =
"""

MAILDIR_CF = """\
virtual_mailbox_domains = regexp:{conf}/domains
virtual_mailbox_maps = regexp:{conf}/mailboxes
virtual_mailbox_base = {root}/mail
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
"""

DISCARD_CF = """\
default_transport = discard:benchmark sink
relay_transport = discard:benchmark sink
local_transport = discard:benchmark sink
relay_domains = regexp:{conf}/domains
"""

# AUTH (Cyrus SASL against a private sasldb): only over TLS, and the only way to be allowed to send.
AUTH_CF = """\
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_local_domain = mx.test.localdomain
smtpd_tls_auth_only = yes
"""

SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: {conf}/sasldb2
"""

TLS_CF = """\
smtpd_tls_cert_file = {conf}/server.pem
smtpd_tls_key_file = {conf}/server.key
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
"""


def postfix_available() -> str | None:
    """None if a private Postfix can be started here, else why not."""
    if shutil.which("postfix") is None and not Path(POSTFIX).exists():
        return "postfix is not installed (scripts/install-system-deps)"
    if os.geteuid() != 0:
        return "starting a private postfix instance needs root"
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_tls(conf: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 / localhost; returns the CA's PEM path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (conf / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (conf / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_file = conf / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    ca_file.chmod(0o644)
    return ca_file


@dataclass
class PrivatePostfix:
    """A running private instance: where it listens and where its mails are."""

    root: Path
    port: int
    sink: str
    ca_file: Path | None = None

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def queue(self) -> Path:
        return self.root / "queue"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "sink"

    @property
    def smtp_url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def queue_empty(self) -> bool:
        return not any(any(p.is_file() for p in (self.queue / d).rglob("*"))
                       for d in ("maildrop", "incoming", "active", "deferred") if (self.queue / d).exists())

    def _files(self) -> list[Path]:
        new = self.maildir / "new"
        return sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name)) if new.exists() else []

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        """The mails delivered so far (oldest first), optionally only those addressed to ``to``."""
        found = []
        for path in self._files():
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            if to is None or to.lower() in str(msg.get("To", "")).lower():
                found.append(msg)
        return found

    def wait_for(self, to: str, count: int = 1, timeout: float = 20.0,
                 where: Callable[[EmailMessage], bool] | None = None) -> list[EmailMessage]:
        """Wait until ``count`` mails to ``to`` (matching ``where``) have arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages(to) if where is None or where(m)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} mails to {to} arrived in {timeout} s; log:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def clear(self) -> None:
        """Forget the mails delivered so far (a fresh sink for the next test)."""
        for path in self._files():
            path.unlink()


def _recipients_map(rejected: Iterable[str]) -> str:
    lines = ["/^bounce-[^@]*@/ 550 5.1.1 User unknown",
             "/^busy-[^@]*@/ 450 4.2.1 Mailbox busy, try again later"]
    for address in rejected:
        escaped = "".join(f"\\{c}" if not c.isalnum() else c for c in address.lower())
        lines.append(f"/^{escaped}$/ 550 5.1.1 User unknown")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_postfix(root: Path | None = None, *, sink: str = "maildir", tls: bool = False,
                    rejected: Iterable[str] = (), auth: tuple[str, str] | None = None) -> Iterator[PrivatePostfix]:
    """Start a private Postfix and stop it when the block ends.

    ``root`` must not exist yet and every folder above it must be open to the postfix user; by
    default a fresh folder under the system's temporary folder is used and removed afterwards.
    ``auth=(user, password)`` requires SMTP AUTH (over STARTTLS, so it implies ``tls``) to send.
    """
    tls = tls or auth is not None
    why_not = postfix_available()
    if why_not:
        raise RuntimeError(why_not)
    if root is None:
        with tempfile.TemporaryDirectory(prefix="inkless-postfix-") as tmp:
            with running_postfix(Path(tmp) / "postfix", sink=sink, tls=tls, rejected=rejected,
                                 auth=auth) as instance:
                yield instance
        return
    conf, queue, data, mail = root / "conf", root / "queue", root / "data", root / "mail"
    for d in (conf, queue, data, mail):
        d.mkdir(parents=True)
    # Postfix's daemons run as the postfix user: they must reach the queue, own their data folder, and
    # (the virtual agent) write the Maildir.
    root.chmod(0o755)
    root.parent.chmod(root.parent.stat().st_mode | 0o055)
    account = pwd.getpwnam("postfix")
    shutil.chown(data, "postfix", "postfix")
    os.chown(mail, account.pw_uid, account.pw_gid)
    port = _free_port()
    # With AUTH only authenticated clients may send, even from loopback.
    allow = "permit_sasl_authenticated" if auth is not None else "permit_mynetworks"
    main = MAIN_CF.format(conf=conf, queue=queue, data=data, root=root, allow=allow)
    main += (MAILDIR_CF if sink == "maildir" else DISCARD_CF).format(
        conf=conf, root=root, uid=account.pw_uid, gid=account.pw_gid)
    ca_file = None
    if tls:
        ca_file = _write_tls(conf)
        main += TLS_CF.format(conf=conf)
    if auth is not None:
        main += AUTH_CF.format(conf=conf)
        # Debian's Postfix reads the Cyrus application file from CONFIG_DIRECTORY/sasl/smtpd.conf.
        (conf / "sasl").mkdir()
        (conf / "sasl" / "smtpd.conf").write_text(SASL_CONF.format(conf=conf))
        subprocess.run(["saslpasswd2", "-f", str(conf / "sasldb2"), "-c", "-p", "-u", "mx.test.localdomain",
                        auth[0]], input=auth[1].encode(), check=True, capture_output=True)
        os.chown(conf / "sasldb2", account.pw_uid, account.pw_gid)
    (conf / "main.cf").write_text(main)
    (conf / "domains").write_text("/./ OK\n")
    (conf / "mailboxes").write_text("/./ sink/\n")
    (conf / "recipients").write_text(_recipients_map(rejected))
    # The packaged service table (the system's copy, or Debian's template when the package was installed
    # with "No configuration").
    packaged = Path("/etc/postfix/master.cf")
    master = (packaged if packaged.exists() else Path("/usr/share/postfix/master.cf.dist")).read_text()
    master = "\n".join(
        line for line in master.splitlines() if not line.startswith(("smtp      inet", "#smtp      inet")))
    # No chroot: the private queue folder lives outside the packaged chroot.
    master = master.replace(" y       -       -       ", " n       -       -       ")
    master += f"\n127.0.0.1:{port} inet n - n - - smtpd\n"
    (conf / "master.cf").write_text(master)
    # The calling process may run with umask 077 (a node restricts its files): the postfix user must
    # still read the configuration and reach the queue. Only the TLS key stays private to root, which
    # is what Postfix asks for (smtpd reads it before dropping privileges).
    for path in (root, queue, conf, *conf.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)
        elif path.name not in ("server.key", "sasldb2"):
            path.chmod(0o644)
    instance = PrivatePostfix(root=root, port=port, sink=sink, ca_file=ca_file)
    # (postfix reports its errors to syslog, to maillog_file, or to the terminal when there is one.)
    subprocess.run([POSTFIX, "-c", str(conf), "set-permissions"], capture_output=True)
    started = subprocess.run([POSTFIX, "-c", str(conf), "start"], capture_output=True, text=True)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"postfix did not start: {started.stderr or started.stdout}{instance.log()[-2000:]}")
        _wait_listening(instance)
        yield instance
    finally:
        subprocess.run([POSTFIX, "-c", str(conf), "stop"], capture_output=True)


def _wait_listening(instance: PrivatePostfix, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", instance.port, timeout=5) as s:
                s.noop()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix did not listen on {instance.port}: {instance.log()[-2000:]}") from None
            time.sleep(0.1)


def deliver_queued_mail(node: Any) -> None:
    """Hand everything due in ``node``'s mail outbox to its SMTP server, as the worker would."""
    assert node.mail is not None
    while node.mail.deliver_due().total:
        pass
