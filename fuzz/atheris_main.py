"""Run one fuzz target under atheris: ``python -m fuzz.atheris_main TARGET [libFuzzer flags] CORPUS...``.

inkless's modules are instrumented for coverage as the target first imports them; the rest of the
process (pyHanko, cryptography, Pillow) runs uninstrumented, so that the coverage guides the fuzzer
through our parsing and refusal code.
"""

from __future__ import annotations

import contextlib
import sys

import atheris  # type: ignore[import-not-found]


def main() -> None:
    name = sys.argv[1]
    with atheris.instrument_imports(include=["inkless", "fuzz"]):
        from fuzz import targets

        # Imports what the target needs, inside the instrumentation; if the empty input crashes, the
        # fuzzer finds it again on its first run and reports it properly.
        with contextlib.suppress(Exception):
            targets.run(name, b"")

    def one_input(data: bytes) -> None:
        targets.run(name, data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
