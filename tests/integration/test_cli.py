"""The ``inkless`` command as an operator runs it: exit codes, --json, clear errors.

The first and the missing-node tests run the real console script; the others run the same command in the
test process (tests/helpers/cli.py), against a node the real script created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.conftest import BACKENDS
from tests.helpers.cli import inkless
from tests.helpers.db import fresh_database

INKLESS = str(Path(sys.executable).with_name("inkless"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """In this process (see the module docstring)."""
    return inkless(*args, env=env)


def real(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The console script in a process of its own."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    full_env.update(env or {})
    return subprocess.run([INKLESS, *args], capture_output=True, text=True, env=full_env, check=False, timeout=120)


@pytest.fixture(scope="module", params=BACKENDS)
def demo_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str]]]:
    """One demo node per backend for the whole module (commands that fail must change nothing anyway)."""
    backend = str(request.param)
    tmp_path = tmp_path_factory.mktemp(f"cli-{backend}")
    data = tmp_path / "demo"
    with fresh_database(backend, tmp_path) as url:
        env = {"INKLESS_DATABASE_URL": url} if backend == "postgresql" else {}
        result = real("init", "--data", str(data), "--demo", "--json", env=env)
        assert result.returncode == 0, result.stderr
        yield data, env


def test_init_demo_and_node_info(demo_dir: tuple[Path, dict[str, str]]) -> None:
    data, env = demo_dir
    info = json.loads(real("node", "info", "--data", str(data), "--json", env=env).stdout)
    assert info["node_id"] == "moj" and info["database"] == ("postgresql" if env else "sqlite")
    assert info["ca_fingerprint"].startswith("SHA256:") and len(info["ca_fingerprint"]) == 7 + 64
    assert oct((data / "master.key").stat().st_mode & 0o777) == "0o600"
    accounts = json.loads((data / "demo-accounts.json").read_text(encoding="utf-8"))
    assert {a["login"] for a in accounts} >= {"tanaka", "yamada"}
    # `inkless user totp` prints the code the user's authenticator shows.
    tanaka = next(a for a in accounts if a["login"] == "tanaka")
    code = real("user", "totp", "tanaka", "--data", str(data), env=env).stdout.strip()
    assert pyotp.TOTP(tanaka["totp_secret"]).verify(code, valid_window=1)


def test_offices_and_users(demo_dir: tuple[Path, dict[str, str]]) -> None:
    data, env = demo_dir
    added = run("office", "add", "immigration", "出入国在留管理庁", "--fax-number", "03-3580-4113",
                "--data", str(data), "--json", env=env)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["address"] == "immigration@moj"
    offices = json.loads(run("office", "list", "--data", str(data), "--json", env=env).stdout)
    assert "immigration" in [o["code"] for o in offices]
    user = run("user", "add", "kobayashi", "--office", "immigration", "--role", "clerk", "--clearance", "1",
               "--name", "小林 直子", "--data", str(data), "--json", env=env)
    assert user.returncode == 0, user.stderr
    assert json.loads(user.stdout)["password"]
    users = json.loads(run("user", "list", "--office", "immigration", "--data", str(data), "--json", env=env).stdout)
    assert [u["login"] for u in users] == ["kobayashi"]
    table = run("user", "list", "--data", str(data), env=env).stdout
    assert "小林 直子" in table and "内部" in table


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("office", "add", "Bad Code", "名前"), 2, "office code"),
        (("office", "add", "civil-affairs", "民事局"), 7, "already exists"),
        (("user", "add", "newbie", "--office", "nowhere", "--role", "clerk", "--clearance", "1", "--name", "x"),
         3, "no office"),
        (("user", "add", "newbie", "--office", "secretariat", "--role", "clerk", "--clearance", "9",
          "--name", "x"), 2, "clearance"),
        (("user", "totp", "nobody"), 3, "nobody"),
        (("init", "--demo"), 7, "already"),
        # Bidi controls disguise text ("photo\u202egpj.exe" shows as "photoexe.jpg"): refused in every name.
        (("office", "add", "bidi-office", "民事\u202e局"), 2, "office name: contains U+202E RIGHT-TO-LEFT OVERRIDE"),
        (("user", "add", "bidi", "--office", "secretariat", "--role", "clerk", "--clearance", "1",
          "--name", "山田\u2066太郎"), 2, "name: contains U+2066 LEFT-TO-RIGHT ISOLATE"),
        (("token", "create", "tanaka", "--office", "civil-affairs", "--name", "ci\x1b[31m"), 2,
         "token name: contains U+001B"),
    ],
)
def test_errors_are_clear_and_change_nothing(
    demo_dir: tuple[Path, dict[str, str]], args: tuple[str, ...], code: int, message: str
) -> None:
    data, env = demo_dir
    before = run("user", "list", "--data", str(data), "--json", env=env).stdout
    result = run(*args, "--data", str(data), env=env)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert run("user", "list", "--data", str(data), "--json", env=env).stdout == before


def test_missing_node_and_bad_settings(tmp_path: Path) -> None:
    result = real("node", "info", "--data", str(tmp_path / "nothing"))
    assert result.returncode == 6 and "inkless init" in result.stderr
    assert not (tmp_path / "nothing").exists()
    result = real("node", "info", env={"INKLESS_DATA": str(tmp_path), "INKLESS_PROT": "1"})
    assert result.returncode == 6 and "INKLESS_PROT" in result.stderr
    result = real("node", "info")
    assert result.returncode == 6 and "--data" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_folder_from_environment(demo_dir: tuple[Path, dict[str, str]]) -> None:
    data, env = demo_dir
    result = run("office", "list", "--json", env={**env, "INKLESS_DATA": str(data)})
    assert result.returncode == 0 and len(json.loads(result.stdout)) >= 3


def test_user_and_office_administration(demo_dir: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """What the admin console changes, the node's operator can change from the command line (same service)."""
    data, env = demo_dir
    d = ["--data", str(data)]
    assert run("user", "add", "honda", "--office", "criminal-affairs", "--role", "integrator", "--clearance", "1",
               "--name", "本田 翼", *d, env=env).returncode == 0
    for args, said in ((("lock", "honda"), "locked honda"), (("unlock", "honda"), "unlocked honda"),
                       (("reset-totp", "honda"), "TOTP key of honda reset"),
                       (("set", "honda", "--role", "approver", "--clearance", "2"),
                        "honda: role approver, clearance 2"),
                       (("deactivate", "honda"), "deactivated honda")):
        done = run("user", *args, *d, env=env)
        assert done.returncode == 0 and said in done.stdout, done.stderr
    again = run("user", "deactivate", "honda", *d, env=env)
    assert again.returncode == 7 and "already deactivated" in again.stderr
    office = run("office", "set", "secretariat", "--kana", "ダイジンカンボウ", "--fax-number", "03-3580-4199", *d,
                 env=env)
    assert office.stdout.strip() == "secretariat: 大臣官房 (ダイジンカンボウ), fax 03-3580-4199", office.stderr
    bad = run("office", "set", "secretariat", "--kana", "daijin", *d, env=env)
    assert bad.returncode == 2 and "kana" in bad.stderr
    fake = tmp_path / "seal.png"
    fake.write_bytes(b"GIF89a not really a png")
    refused = run("office", "seal-image", "secretariat", str(fake), *d, env=env)
    assert refused.returncode == 2 and "PNG or JPEG" in refused.stderr
    audit = run("audit", "list", "--object-id", "honda", "--json", *d, env=env)
    actions = [e["action"] for e in json.loads(audit.stdout)]
    assert actions == ["user.created", "user.locked", "user.unlocked", "user.totp_reset", "user.changed",
                       "user.deactivated"]
