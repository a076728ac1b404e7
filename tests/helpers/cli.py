"""The ``inkless`` command run inside the test process.

Same parser, commands, output and exit codes as the console script (``inkless.cli.main:main``), without
starting an interpreter and importing the whole product again for every call (1.5-2 s of CPU each).
The test process's speed-ups apply (a pool of RSA keys, cheap password hashes: tests/conftest.py), so
``inkless init --demo`` takes a tenth of a second instead of three.

What only a real process shows stays tested with one: start-up time and ``--help`` without the heavy
libraries (test_cli_startup), the exit-code table (test_cli_exit_codes), signals and the umask
(test_worker_process, test_files_at_rest), log lines on stderr (test_verify_messages), and the few
real-process tests kept in test_cli. Commands that serve or run workers are never run here.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping

from inkless.cli.main import main

NEVER_IN_PROCESS = {"serve", "worker"}


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        # As for a subprocess with a clean environment: no INKLESS_* variable of the test run leaks in.
        for name in [n for n in os.environ if n.startswith("INKLESS_")]:
            del os.environ[name]
        os.environ.update(env or {})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def inkless(*args: str, env: Mapping[str, str] | None = None, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    """Run ``inkless ARGS`` in this process; the result reads like ``subprocess.run(..., text=True)``'s."""
    assert not NEVER_IN_PROCESS & set(args[:2]), "serve and worker run as processes (tests.helpers.nodes)"
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_stdin = sys.argv, sys.stdin
    umask = os.umask(0o077)
    os.umask(umask)
    code: int = 0
    try:
        sys.argv = ["inkless", *args]
        sys.stdin = io.StringIO(input or "")
        with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                if exc.code is None:
                    code = 0
                elif isinstance(exc.code, int):
                    code = exc.code
                else:
                    err.write(f"{exc.code}\n")
                    code = 1
    finally:
        sys.argv, sys.stdin = saved_argv, saved_stdin
        os.umask(umask)
    return subprocess.CompletedProcess(["inkless", *args], code, out.getvalue(), err.getvalue())
