"""The node master key and everything encrypted under it.

Private keys and TOTP secrets are stored only as AES-256-GCM ciphertext. The
associated data binds each ciphertext to its purpose and owner, so a ciphertext
copied into another row (say, an office's key swapped for another's) fails to
open instead of silently working.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, insert, select

from inkless.db import tables as t
from inkless.errors import KeyStoreError, NotFoundError

MASTER_KEY_ENV = "INKLESS_MASTER_KEY"
_NONCE = 12


def create_master_key_file(path: Path) -> None:
    """Write a fresh random 256-bit master key to ``path`` with mode 0600 (never overwrites)."""
    key = AESGCM.generate_key(bit_length=256)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyStoreError(f"{path} already exists; refusing to overwrite a master key") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(key) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def load_master_key(path: Path, env: Mapping[str, str] | None = None) -> bytes:
    """Read the master key from ``$INKLESS_MASTER_KEY`` or the key file (which must be mode 0600)."""
    env = os.environ if env is None else env
    if env.get(MASTER_KEY_ENV):
        return _decode_key(env[MASTER_KEY_ENV], MASTER_KEY_ENV)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyStoreError(
            f"master key file {path} not found (set {MASTER_KEY_ENV} or restore the file from backup)"
        ) from None
    # A key file readable by others defeats encryption at rest: refuse rather than warn.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"master key file {path} must not be accessible by group or others (chmod 600)")
    return _decode_key(path.read_text(encoding="ascii").strip(), str(path))


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"{source}: master key is not base64") from None
    if len(key) != 32:
        raise KeyStoreError(f"{source}: master key must be 32 bytes (256 bits), got {len(key)}")
    return key


class SecretBox:
    """AES-256-GCM under the master key: ``seal`` and ``open`` small secrets."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(master_key)
        self._master_key = master_key

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for another use of the master key (HKDF-SHA-256 with ``purpose`` as info)."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(self._master_key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt; the result is ``nonce || ciphertext+tag``."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        """Decrypt what :meth:`seal` made with the same context."""
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())
        except (InvalidTag, ValueError):
            raise KeyStoreError(
                f"cannot decrypt {context}: wrong master key or tampered ciphertext"
            ) from None


def _key_context(purpose: str, owner: str) -> str:
    return f"inkless/private-key/{purpose}/{owner}"


class KeyStore:
    """Private keys in the database, encrypted under the master key."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def put(self, conn: Connection, purpose: str, owner: str, key: PrivateKeyTypes, now: datetime) -> int:
        """Store ``key`` encrypted; returns its id."""
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        sealed = self._box.seal(der, _key_context(purpose, owner))
        algorithm = type(key).__name__.removeprefix("_").replace("PrivateKey", "").lower() or "unknown"
        result = conn.execute(
            insert(t.private_keys).values(
                purpose=purpose,
                owner=owner,
                algorithm=algorithm,
                nonce=sealed[:_NONCE],
                ciphertext=sealed[_NONCE:],
                created_at=now,
            )
        )
        key_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        assert isinstance(key_id, int)
        return key_id

    def get(self, conn: Connection, key_id: int) -> PrivateKeyTypes:
        """Open the key with id ``key_id`` (in memory only)."""
        return serialization.load_der_private_key(self.get_der(conn, key_id), password=None)

    def get_der(self, conn: Connection, key_id: int) -> bytes:
        """The decrypted PKCS#8 DER of key ``key_id`` (in memory only), for callers that parse it themselves."""
        row = conn.execute(select(t.private_keys).where(t.private_keys.c.id == key_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"private key {key_id} not found")
        return self._box.open(row.nonce + row.ciphertext, _key_context(row.purpose, row.owner))
