"""Benchmark: how fast the `inkless` command starts.

    .venv/bin/python bench/cli_startup.py [--rounds 7]

Wall time (median of rounds, commands alternated in the same run) of `inkless --help`,
`inkless --version`, `inkless send --help`, `inkless inbox --help` and `inkless fax send --help`
— everything a command does before opening the node — against three peers measured alongside:
a bare interpreter (`python -c pass`), `python -c 'import typer'` (the CLI framework alone) and
`git --version`. Prints each time and the ratio to the bare interpreter and to `import typer`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _inkless() -> str:
    beside = Path(sys.executable).with_name("inkless")
    return str(beside) if beside.exists() else (shutil.which("inkless") or "inkless")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    inkless = _inkless()
    commands: dict[str, list[str]] = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    }
    git = shutil.which("git")
    if git:
        commands["git --version"] = [git, "--version"]
    for line in ("--help", "--version", "send --help", "inbox --help", "fax send --help"):
        commands[f"inkless {line}"] = [inkless, *line.split()]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, argv in commands.items():
            t = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(values) for name, values in times.items()}
    bare, typer_only = median["python -c pass"], median["python -c 'import typer'"]
    print(f"start-up, median of {args.rounds} rounds")
    print(f"    {'command':28} {'seconds':>8} {'× python':>9} {'× import typer':>15}")
    for name, seconds in median.items():
        print(f"    {name:28} {seconds:8.3f} {seconds / bare:9.1f} {seconds / typer_only:15.2f}")


if __name__ == "__main__":
    main()
