"""Benchmark: how fast the `inkless` command starts.

    .venv/bin/python bench/cli.py [--rounds 7]

Wall time (median of rounds, commands alternated in the same run) of `inkless --help`,
`inkless --version`, `inkless send --help`, `inkless inbox --help` and `inkless fax send --help`
— everything a command does before opening the node — and of two ordinary commands that open a
demo node made for the run: `inkless inbox OFFICE` (lists an empty inbox) and `inkless send` of a
file that does not exist (refused before any work), against three peers measured alongside: a bare
interpreter (`python -c pass`), `python -c 'import typer'` (the CLI framework alone) and
`git --version`. Prints each time and the ratio to the bare interpreter and to `import typer`;
for the ordinary commands also the time beyond `import typer` (the goal: ≤ 0.3 s).

The commands run as installed: inkless's modules are byte-compiled first (``compileall``, which
``pip install`` does for a regular install; an editable install under ``PYTHONDONTWRITEBYTECODE``
would otherwise compile some 120 modules from source at every start).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _inkless() -> str:
    beside = Path(sys.executable).with_name("inkless")
    return str(beside) if beside.exists() else (shutil.which("inkless") or "inkless")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import inkless

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(inkless.__file__).parent)],
                   check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as folder:
        node = Path(folder) / "node"
        subprocess.run([_inkless(), "init", "--data", str(node), "--demo"], check=True, capture_output=True)
        run(args.rounds, node)


def run(rounds: int, node: Path) -> None:
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
    ordinary = {
        "inkless inbox OFFICE": [inkless, "inbox", "civil-affairs", "--as", "tanaka", "--data", str(node)],
        "inkless send (no such file)": [inkless, "send", str(node / "missing.pdf"), "--from", "civil-affairs",
                                        "--to", "civil-affairs@moj", "--subject", "x", "--as", "tanaka",
                                        "--data", str(node)],
    }
    commands.update(ordinary)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            t = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[name].append(time.perf_counter() - t)
    median = {name: statistics.median(values) for name, values in times.items()}
    bare, typer_only = median["python -c pass"], median["python -c 'import typer'"]
    print(f"start-up, median of {rounds} rounds")
    print(f"    {'command':28} {'seconds':>8} {'× python':>9} {'× import typer':>15} {'beyond typer':>13}")
    for name, seconds in median.items():
        beyond = f"{seconds - typer_only:12.3f}s" if name in ordinary else ""
        print(f"    {name:28} {seconds:8.3f} {seconds / bare:9.1f} {seconds / typer_only:15.2f} {beyond:>13}")


if __name__ == "__main__":
    main()
