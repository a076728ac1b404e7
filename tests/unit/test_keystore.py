"""The master key and the secret box."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from inkless.errors import KeyStoreError
from inkless.pki.keystore import SecretBox, create_master_key_file, load_master_key


def test_master_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key_file(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(load_master_key(path, env={})) == 32
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        create_master_key_file(path)


def test_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        load_master_key(path, env={})


def test_key_from_environment(tmp_path: Path) -> None:
    key = os.urandom(32)
    assert load_master_key(tmp_path / "absent", env={"INKLESS_MASTER_KEY": base64.b64encode(key).decode()}) == key


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_bad_key_from_environment(tmp_path: Path, value: str) -> None:
    with pytest.raises(KeyStoreError):
        load_master_key(tmp_path / "absent", env={"INKLESS_MASTER_KEY": value})


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="not found"):
        load_master_key(tmp_path / "absent", env={})


def test_box_round_trip_and_context_binding() -> None:
    box = SecretBox(os.urandom(32))
    sealed = box.seal(b"secret", "a")
    assert b"secret" not in sealed
    assert box.open(sealed, "a") == b"secret"
    with pytest.raises(KeyStoreError):
        box.open(sealed, "b")  # moved to another row: refuses to open
    with pytest.raises(KeyStoreError):
        SecretBox(os.urandom(32)).open(sealed, "a")  # wrong master key
    with pytest.raises(KeyStoreError):
        box.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), "a")  # tampered
