"""The CLI starts at once: help and argument errors load no database, crypto, PDF or web library.

Timing is a benchmark (bench/cli.py); this test checks the cause that a slow start would have —
which modules a command loads before it does any work — in a fresh interpreter, as `inkless` runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What a node or a command's work needs, and what `--help` must not pay for.
HEAVY = ("pyhanko", "reportlab", "pypdfium2", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic",
         "cryptography", "asn1crypto", "httpx", "PIL", "pikepdf", "ocrmypdf", "jinja2", "img2pdf")

_PROBE = """
import json, sys
sys.argv = ["inkless", *json.loads(sys.argv[1])]
from inkless.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted({name if MODULES else name.split(".")[0] for name in sys.modules} & set(HEAVY))
print("\\n" + json.dumps({"code": code, "loaded": loaded}))
"""


def _probe(*args: str) -> dict[str, object]:
    script = f"HEAVY = {list(HEAVY)!r}\nMODULES = False\n" + _PROBE
    done = subprocess.run([sys.executable, "-c", script, json.dumps(list(args))],
                          capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("args", [
    ("--help",),
    ("--version",),
    ("send", "--help"),
    ("inbox", "--help"),
    ("fax", "--help"),
    ("fax", "send", "--help"),
    ("seal", "--help"),
    ("route", "--help"),
    ("token", "--help"),
    ("peer", "--help"),
])
def test_help_loads_no_heavy_library(args: tuple[str, ...]) -> None:
    result = _probe(*args)
    assert result["code"] == 0
    assert result["loaded"] == [], f"`inkless {' '.join(args)}` imported {result['loaded']}"


def test_a_usage_error_loads_no_heavy_library() -> None:
    # `inkless send` without its arguments fails before opening the node: nothing heavy is loaded.
    result = _probe("send")
    assert result["code"] == 2
    assert result["loaded"] == []


def test_the_probe_sees_a_command_that_opens_the_node(tmp_path: object) -> None:
    # The check can fail: a command that does work loads the node (SQLAlchemy, cryptography, ...).
    result = _probe("node", "info", "--data", str(tmp_path))
    assert "sqlalchemy" in result["loaded"]  # type: ignore[operator]


# What an ordinary command on a node must not load: seals and CMS verification (pyHanko), migrations
# (Alembic), PDF drawing (reportlab, fontTools, Pillow), password hashing (argon2) and the HTTP client.
NOT_FOR_ORDINARY_COMMANDS = ("pyhanko", "alembic", "aiohttp", "reportlab", "fontTools", "PIL", "argon2", "pyotp",
                             "segno", "httpx", "pypdfium2", "ocrmypdf")


@pytest.fixture(scope="module")
def demo_node(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.helpers.cli import inkless

    data = tmp_path_factory.mktemp("startup") / "node"
    done = inkless("init", "--data", str(data), "--demo")
    assert done.returncode == 0, done.stderr
    return str(data)


def _probe_loaded(*args: str, heavy: tuple[str, ...], modules: bool = False) -> dict[str, object]:
    """What ``inkless ARGS`` loaded of ``heavy``: top-level packages, or whole module names (``modules``)."""
    script = f"HEAVY = {list(heavy)!r}\nMODULES = {modules!r}\n" + _PROBE
    done = subprocess.run([sys.executable, "-c", script, json.dumps(list(args))],
                          capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_listing_an_inbox_loads_neither_pyhanko_nor_alembic(demo_node: str) -> None:
    result = _probe_loaded("inbox", "civil-affairs", "--as", "tanaka", "--data", demo_node,
                           heavy=(*NOT_FOR_ORDINARY_COMMANDS, "sqlalchemy"))
    assert result["code"] == 0
    assert result["loaded"] == ["sqlalchemy"]  # the node was opened: the probe sees what it loaded


def test_sending_a_document_loads_neither_pyhanko_nor_alembic(demo_node: str, tmp_path: object) -> None:
    from pathlib import Path

    from tests.helpers.seals import sample_pdf

    document = Path(str(tmp_path)) / "通知.pdf"
    document.write_bytes(sample_pdf(1))
    result = _probe_loaded("send", str(document), "--from", "civil-affairs", "--to", "civil-affairs@moj",
                           "--subject", "起動の確認", "--as", "tanaka", "--data", demo_node,
                           heavy=NOT_FOR_ORDINARY_COMMANDS)
    assert result["code"] == 0
    assert result["loaded"] == []


def test_the_probe_sees_a_command_that_seals(demo_node: str, tmp_path: object) -> None:
    # The check can fail: verifying a seal does load pyHanko.
    from pathlib import Path

    from tests.helpers.seals import sample_pdf

    document = Path(str(tmp_path)) / "unsealed.pdf"
    document.write_bytes(sample_pdf(1))
    result = _probe_loaded("verify", str(document), "--data", demo_node, heavy=NOT_FOR_ORDINARY_COMMANDS)
    assert "pyhanko" in result["loaded"]  # type: ignore[operator]


# The node builds a service the first time a command uses it: listing an inbox needs delivery, not
# the fax bridge, approval routes, the intake window, the metrics or the administration console.
NOT_FOR_AN_INBOX = ("inkless.fax.service", "inkless.fax.imaging", "inkless.seals.route_service",
                    "inkless.intake.service", "inkless.metrics.service", "inkless.directory.admin",
                    "inkless.audit.witness", "inkless.directory.tokens")


def test_listing_an_inbox_builds_only_the_services_it_uses(demo_node: str) -> None:
    listed = _probe_loaded("inbox", "civil-affairs", "--as", "tanaka", "--data", demo_node,
                           heavy=(*NOT_FOR_AN_INBOX, "inkless.delivery.service"), modules=True)
    assert listed["code"] == 0
    assert listed["loaded"] == ["inkless.delivery.service"]  # delivery was built: the probe sees it
    faxes = _probe_loaded("fax", "jobs", "--data", demo_node, heavy=NOT_FOR_AN_INBOX, modules=True)
    assert faxes["code"] == 0 and "inkless.fax.service" in faxes["loaded"]  # type: ignore[operator]
