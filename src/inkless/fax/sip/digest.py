"""Digest authentication for SIP (RFC 3261 §22, RFC 8760): MD5 and SHA-256, qop=auth, nc/cnonce."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from inkless.errors import SipMessageError

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
# Prefer the stronger algorithm when a server offers several challenges (RFC 8760 §2.4).
PREFERENCE = ("SHA-256", "MD5")
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Challenge:
    """One ``Digest`` challenge of a WWW-Authenticate / Proxy-Authenticate header."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise SipMessageError(f"not a Digest challenge: {scheme[:20]!r}")
        params = {m.group(1).lower(): _unquote(m.group(2)) for m in _PARAM_RE.finditer(rest)}
        if "realm" not in params or "nonce" not in params:
            raise SipMessageError("Digest challenge without realm or nonce")
        algorithm = params.get("algorithm", "MD5").upper()
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(realm=params["realm"], nonce=params["nonce"], algorithm=algorithm, qop=qop,
                   opaque=params.get("opaque"), stale=params.get("stale", "").lower() == "true")

    @property
    def supported(self) -> bool:
        """True when we can answer it (a known algorithm; qop absent or offering ``auth``)."""
        return self.algorithm in ALGORITHMS and (not self.qop or "auth" in self.qop)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def response(
    challenge: Challenge, *, username: str, password: str, method: str, uri: str,
    nc: int = 1, cnonce: str | None = None,
) -> str:
    """The ``response`` value for ``challenge`` (RFC 8760 §2 / RFC 7616 §3.4.1)."""
    alg = challenge.algorithm
    ha1 = _h(alg, f"{username}:{challenge.realm}:{password}")
    ha2 = _h(alg, f"{method}:{uri}")
    if "auth" in challenge.qop:
        if cnonce is None:
            raise ValueError("qop=auth needs a cnonce")
        return _h(alg, f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return _h(alg, f"{ha1}:{challenge.nonce}:{ha2}")


def choose(values: list[str]) -> Challenge | None:
    """The challenge to answer among several headers (SHA-256 before MD5); None when none is usable."""
    parsed: list[Challenge] = []
    for value in values:
        try:
            challenge = Challenge.parse(value)
        except SipMessageError:
            continue
        if challenge.supported:
            parsed.append(challenge)
    for algorithm in PREFERENCE:
        for challenge in parsed:
            if challenge.algorithm == algorithm:
                return challenge
    return None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization(
    challenge: Challenge, *, username: str, password: str, method: str, uri: str, nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The value of an Authorization / Proxy-Authorization header answering ``challenge``."""
    qop = "auth" in challenge.qop
    if qop and cnonce is None:
        cnonce = secrets.token_hex(8)
    digest = response(challenge, username=username, password=password, method=method, uri=uri, nc=nc,
                      cnonce=cnonce)
    parts = [f"username={_quote(username)}", f"realm={_quote(challenge.realm)}", f"nonce={_quote(challenge.nonce)}",
             f"uri={_quote(uri)}", f"response={_quote(digest)}", f"algorithm={challenge.algorithm}"]
    if qop:
        parts += ["qop=auth", f"nc={nc:08x}", f"cnonce={_quote(cnonce or '')}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)
