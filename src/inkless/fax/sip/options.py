"""The ``fax_sip_*`` settings, checked and parsed into what the SIP line needs."""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inkless.errors import ConfigurationError, SipMessageError
from inkless.fax.sip.message import SipUri

if TYPE_CHECKING:
    from inkless.config import Settings

T38_POLICIES = ("prefer", "accept", "off")
CODECS = ("PCMU", "PCMA")


@dataclass(frozen=True)
class SipOptions:
    """The SIP line's configuration, every value checked."""

    listen: tuple[str, int]
    registrar: SipUri | None
    username: str
    password: str
    gateways: tuple[SipUri, ...]
    rtp_ports: tuple[int, int]
    t38: str
    codecs: tuple[str, ...]
    trusted_sources: tuple[str, ...]
    max_calls: int
    ident: str

    @property
    def outbound_targets(self) -> tuple[SipUri, ...]:
        """Where outbound calls go, in order: the gateways, else the registrar (as outbound proxy)."""
        if self.gateways:
            return self.gateways
        return (self.registrar,) if self.registrar is not None else ()

    @property
    def trusted(self) -> tuple[str, ...]:
        """Addresses allowed to send INVITEs: the setting, else the registrar and gateway hosts."""
        if self.trusted_sources:
            return self.trusted_sources
        hosts = [u.host for u in self.gateways] + ([self.registrar.host] if self.registrar else [])
        return tuple(h for h in hosts if _is_ip(h)) or ("127.0.0.0/8", "::1/128")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def host_port(text: str, key: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{key} = {text!r} must be HOST:PORT, e.g. 0.0.0.0:5060")
    if not _is_ip(host):
        raise ConfigurationError(f"{key} = {text!r}: the host must be an IP address")
    return host, int(port)


def sip_uri(text: str, key: str) -> SipUri:
    try:
        uri = SipUri.parse(text)
    except SipMessageError:
        raise ConfigurationError(f"{key}: {text!r} is not a sip:HOST:PORT URI") from None
    if uri.user:
        raise ConfigurationError(f"{key}: {text!r} must not contain a user part (sip:HOST:PORT)")
    return uri


def read_password(settings: Settings) -> str:
    """The SIP password: ``fax_sip_password``, or the file ``fax_sip_password_file`` (mode 0600)."""
    path = settings.fax_sip_password_file
    if path == Path() or str(path) in ("", "."):
        return settings.fax_sip_password
    if settings.fax_sip_password:
        raise ConfigurationError("set fax_sip_password or fax_sip_password_file, not both")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigurationError(f"fax_sip_password_file {path}: cannot be read ({exc.strerror})") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigurationError(
            f"fax_sip_password_file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "run: chmod 600 " + str(path))
    return path.read_text(encoding="utf-8").strip()


def sip_options(settings: Settings, *, read_secret: bool = True) -> SipOptions:
    """Parse and check every ``fax_sip_*`` key; ConfigurationError names the key and the fix.

    ``read_secret=False`` checks the values without opening the password file (other lines).
    """
    listen = host_port(settings.fax_sip_listen, "fax_sip_listen")
    registrar = sip_uri(settings.fax_sip_registrar, "fax_sip_registrar") if settings.fax_sip_registrar else None
    gateways = tuple(sip_uri(g.strip(), "fax_sip_gateways") for g in settings.fax_sip_gateways.split(",") if g.strip())
    low, sep, high = settings.fax_sip_rtp_ports.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ConfigurationError(
            f"fax_sip_rtp_ports = {settings.fax_sip_rtp_ports!r} must be LOW-HIGH, e.g. 20000-20999")
    ports = (int(low), int(high))
    if not 1024 <= ports[0] <= ports[1] < 65536:
        raise ConfigurationError(
            f"fax_sip_rtp_ports = {settings.fax_sip_rtp_ports!r}: need 1024 <= LOW <= HIGH <= 65535")
    if ports[1] - ports[0] + 1 < settings.fax_max_calls:
        raise ConfigurationError(
            f"fax_sip_rtp_ports {settings.fax_sip_rtp_ports} has fewer ports than "
            f"fax_max_calls ({settings.fax_max_calls})")
    if settings.fax_sip_t38 not in T38_POLICIES:
        raise ConfigurationError(
            f"fax_sip_t38 = {settings.fax_sip_t38!r} must be one of {', '.join(T38_POLICIES)}")
    codecs = tuple(c.strip().upper() for c in settings.fax_sip_codecs.split(",") if c.strip())
    if not codecs or any(c not in CODECS for c in codecs):
        raise ConfigurationError(f"fax_sip_codecs = {settings.fax_sip_codecs!r} must list PCMU and/or PCMA")
    trusted = tuple(s.strip() for s in settings.fax_sip_trusted_sources.split(",") if s.strip())
    for source in trusted:
        if not _is_ip(source):
            raise ConfigurationError(
                f"fax_sip_trusted_sources: {source!r} is not an IP address or network (e.g. 192.0.2.10 or 10.0.0.0/8)")
    password = read_password(settings) if read_secret else ""
    if registrar is not None and not settings.fax_sip_username:
        raise ConfigurationError("fax_sip_registrar is set: fax_sip_username is needed too")
    return SipOptions(listen=listen, registrar=registrar, username=settings.fax_sip_username, password=password,
                      gateways=gateways, rtp_ports=ports, t38=settings.fax_sip_t38, codecs=codecs,
                      trusted_sources=trusted, max_calls=settings.fax_max_calls, ident=settings.fax_ident)
