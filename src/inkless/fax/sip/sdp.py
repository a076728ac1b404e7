"""SDP offer/answer for a fax endpoint (RFC 4566, RFC 3264): G.711 audio and T.38 over UDPTL.

Only what a fax call needs: one audio stream (PCMU/PCMA, ptime 20, no comfort noise, no
telephone-event) or one ``m=image … udptl t38`` stream. Both shapes of a T.38 offer are
understood: the image line replacing the audio line, or added as a second line with the audio
port set to 0 (RFC 3264 §8: an answer keeps every offered line, in order, refusing with port 0).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from inkless.errors import SipMessageError
from inkless.fax.sip.media_model import T38Params

STATIC_PAYLOADS = {"PCMU": 0, "PCMA": 8}
# RFC 2198 redundant audio (ITU-T V.152 advises it for voice-band data): each packet also carries the
# two previous frames, so a lost packet's audio arrives one packet later instead of as a hole.
RED_PAYLOAD = 96
RED_DEPTH = 2
MAX_SDP_BYTES = 8192


@dataclass(frozen=True)
class MediaLine:
    """One ``m=`` section: its kind, port, protocol, formats, attributes and connection address."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    attributes: tuple[tuple[str, str | None], ...] = ()
    host: str | None = None

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key.lower() == name.lower():
                return value if value is not None else ""
        return None


@dataclass(frozen=True)
class SessionDescription:
    """A parsed SDP body: the session-level connection address and the media lines."""

    host: str | None
    media: tuple[MediaLine, ...]

    def host_of(self, line: MediaLine) -> str:
        host = line.host or self.host
        if not host:
            raise SipMessageError("SDP has no connection address (c=)")
        return host


@dataclass(frozen=True)
class AudioMedia:
    """Negotiated G.711 audio: where to send RTP, with which payload type and codec."""

    host: str
    port: int
    payload_type: int
    codec: str
    red_payload_type: int | None = None  # the far end's RFC 2198 payload type, when both sides have it

    kind = "audio"

    @property
    def remote(self) -> tuple[str, int]:
        return self.host, self.port


@dataclass(frozen=True)
class T38Media:
    """Negotiated T.38: where to send UDPTL and the far end's T.38 parameters."""

    host: str
    port: int
    params: T38Params

    kind = "t38"

    @property
    def remote(self) -> tuple[str, int]:
        return self.host, self.port


Media = AudioMedia | T38Media


def parse(body: bytes) -> SessionDescription:
    """Parse an SDP body; raises SipMessageError when it is not usable SDP."""
    if len(body) > MAX_SDP_BYTES:
        raise SipMessageError(f"SDP body over {MAX_SDP_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SipMessageError("SDP is not UTF-8") from None
    session_host: str | None = None
    media: list[MediaLine] = []
    current: dict[str, object] | None = None
    seen_version = False

    def flush() -> None:
        if current is not None:
            media.append(MediaLine(**current))  # type: ignore[arg-type]

    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SipMessageError(f"bad SDP line {line[:40]!r}")
        key, value = line[0], line[2:]
        if key == "v":
            seen_version = value == "0"
        elif key == "c":
            host = _connection(value)
            if current is None:
                session_host = host
            else:
                current["host"] = host
        elif key == "m":
            flush()
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SipMessageError(f"bad SDP media line {line[:60]!r}")
            port = int(parts[1].split("/")[0])
            if port > 65535:
                raise SipMessageError("SDP port out of range")
            current = {"kind": parts[0].lower(), "port": port, "proto": parts[2],
                       "formats": tuple(parts[3:]), "attributes": (), "host": None}
        elif key == "a" and current is not None:
            name, sep, attr = value.partition(":")
            current["attributes"] = (*current["attributes"], (name, attr if sep else None))  # type: ignore[misc]
    flush()
    if not seen_version:
        raise SipMessageError("SDP without v=0")
    if not media:
        raise SipMessageError("SDP without media lines")
    return SessionDescription(host=session_host, media=tuple(media))


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SipMessageError(f"bad SDP connection line {value[:60]!r}")
    host = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SipMessageError(f"SDP connection address is not an IP address: {host[:60]!r}") from None
    return host


def _codec_of(line: MediaLine, fmt: str) -> str | None:
    for key, value in line.attributes:
        if key.lower() == "rtpmap" and value:
            pt, _, encoding = value.partition(" ")
            if pt == fmt:
                return encoding.split("/")[0].upper()
    return {"0": "PCMU", "8": "PCMA"}.get(fmt)


def audio_of(sdp: SessionDescription, line: MediaLine, codecs: tuple[str, ...]) -> AudioMedia | None:
    """The audio we would use on ``line`` (the first of the offerer's formats that we accept)."""
    if line.kind != "audio" or line.port == 0 or "RTP/AVP" not in line.proto.upper():
        return None
    red = next((int(f) for f in line.formats if f.isdigit() and _codec_of(line, f) == "RED"), None)
    for fmt in line.formats:
        codec = _codec_of(line, fmt)
        if codec in codecs and fmt.isdigit():
            return AudioMedia(sdp.host_of(line), line.port, int(fmt), codec, red)
    return None


def t38_of(sdp: SessionDescription, line: MediaLine) -> T38Media | None:
    """The T.38 stream on ``line`` if it is an active ``m=image … udptl t38`` line."""
    if line.kind != "image" or line.port == 0 or line.proto.lower() != "udptl" or "t38" not in line.formats:
        return None
    defaults = T38Params()

    def number(name: str, default: int) -> int:
        value = line.attribute(name)
        return int(value) if value and value.strip().isdigit() else default

    params = replace(
        defaults,
        version=number("T38FaxVersion", 0),
        max_bit_rate=number("T38MaxBitRate", defaults.max_bit_rate),
        max_buffer=number("T38FaxMaxBuffer", defaults.max_buffer),
        max_datagram=number("T38FaxMaxDatagram", defaults.max_datagram),
        rate_management=line.attribute("T38FaxRateManagement") or defaults.rate_management,
        udp_ec=line.attribute("T38FaxUdpEC") or defaults.udp_ec,
    )
    return T38Media(sdp.host_of(line), line.port, params)


def choose(sdp: SessionDescription, codecs: tuple[str, ...], accept_t38: bool) -> tuple[Media, int] | None:
    """What to accept from an offer: (media, index of its m-line), T.38 first when allowed."""
    if accept_t38:
        for index, line in enumerate(sdp.media):
            t38 = t38_of(sdp, line)
            if t38 is not None:
                return t38, index
    for index, line in enumerate(sdp.media):
        audio = audio_of(sdp, line, codecs)
        if audio is not None:
            return audio, index
    return None


class SdpSession:
    """Our side of one dialog's SDP: origin id, version (bumped on every change) and address."""

    def __init__(self, host: str, session_id: int) -> None:
        self.host = host
        self.session_id = session_id
        self.version = session_id

    def _head(self, bump: bool) -> list[str]:
        if bump:
            self.version += 1
        family = "IP6" if ":" in self.host else "IP4"
        return ["v=0", f"o=inkless {self.session_id} {self.version} IN {family} {self.host}", "s=inkless fax",
                f"c=IN {family} {self.host}", "t=0 0"]

    @staticmethod
    def audio_lines(port: int, codecs: tuple[str, ...], payload_type: int | None = None,
                    red: int | None = RED_PAYLOAD) -> list[str]:
        # Payload types: the static ones for G.711 and red; no telephone-event, no CN (noise corrupts modems).
        chosen = [(c, STATIC_PAYLOADS[c]) for c in codecs if c in STATIC_PAYLOADS]
        if payload_type is not None:
            chosen = [(c, pt) for c, pt in chosen if pt == payload_type] or chosen
        formats = [str(pt) for _, pt in chosen] + ([str(red)] if red is not None else [])
        lines = [f"m=audio {port} RTP/AVP {' '.join(formats)}"]
        lines += [f"a=rtpmap:{pt} {c}/8000" for c, pt in chosen]
        if red is not None:
            primary = chosen[0][1]
            lines += [f"a=rtpmap:{red} red/8000", f"a=fmtp:{red} {'/'.join([str(primary)] * (RED_DEPTH + 1))}"]
        lines += ["a=ptime:20", "a=sendrecv"]
        return lines

    @staticmethod
    def image_lines(port: int, params: T38Params) -> list[str]:
        return [
            f"m=image {port} udptl t38",
            f"a=T38FaxVersion:{params.version}",
            f"a=T38MaxBitRate:{params.max_bit_rate}",
            f"a=T38FaxRateManagement:{params.rate_management}",
            f"a=T38FaxMaxBuffer:{params.max_buffer}",
            f"a=T38FaxMaxDatagram:{params.max_datagram}",
            f"a=T38FaxUdpEC:{params.udp_ec}",
        ]

    def offer_audio(self, port: int, codecs: tuple[str, ...], bump: bool = True) -> bytes:
        return _body(self._head(bump) + self.audio_lines(port, codecs))

    def offer_t38(self, port: int, params: T38Params) -> bytes:
        return _body(self._head(True) + self.image_lines(port, params))

    def answer(self, offer: SessionDescription, chosen: Media, index: int, port: int, params: T38Params,
               bump: bool = True) -> bytes:
        """Answer ``offer`` accepting line ``index`` with ``chosen``; every other line is refused (port 0)."""
        lines = self._head(bump)
        for i, line in enumerate(offer.media):
            if i == index and isinstance(chosen, AudioMedia):
                # Redundant audio only when the offer has it, under the offerer's payload type.
                lines += self.audio_lines(port, (chosen.codec,), chosen.payload_type, red=chosen.red_payload_type)
            elif i == index and isinstance(chosen, T38Media):
                answered = replace(params, version=min(params.version, chosen.params.version),
                                   max_bit_rate=min(params.max_bit_rate, chosen.params.max_bit_rate),
                                   rate_management=chosen.params.rate_management)
                lines += self.image_lines(port, answered)
            else:
                lines.append(f"m={line.kind} 0 {line.proto} {' '.join(line.formats)}")
        return _body(lines)


def _body(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def answered_media(answer: SessionDescription, offered: str, codecs: tuple[str, ...]) -> Media | None:
    """What the far end accepted in its answer to our ``offered`` ("audio" or "t38"); None = refused.

    An answer whose image line has port 0 (as baresip sends to a T.38 re-INVITE) is a refusal.
    """
    for line in answer.media:
        if offered == "t38":
            t38 = t38_of(answer, line)
            if t38 is not None:
                return t38
        else:
            audio = audio_of(answer, line, codecs)
            if audio is not None:
                return audio
    return None
