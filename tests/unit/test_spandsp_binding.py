"""The spandsp binding loads Debian's 0.0.6 library and refuses anything else with a clear message."""

from __future__ import annotations

import ctypes.util

import pytest

from inkless.errors import FaxError
from inkless.fax import spandsp as sd


def test_the_system_library_loads_and_is_0_0_6() -> None:
    lib = sd.spandsp()
    assert lib.path.endswith(sd.REQUIRED_SONAME)
    assert lib.completion_text(sd.T30_ERR_OK) == "OK"
    assert lib.completion_text(sd.T30_ERR_CALLDROPPED) == "The call dropped prematurely"
    # The stats struct is 15 ints in 0.0.6; a layout mismatch would corrupt memory.
    assert ctypes.sizeof(sd.T30Stats) == 15 * ctypes.sizeof(ctypes.c_int)


def test_a_state_can_be_made_and_released() -> None:
    lib = sd.spandsp()
    state = lib.fax_init(None, 1)
    assert state
    assert lib.fax_get_t30_state(state)
    lib.fax_release(state)
    lib.fax_free(state)


def test_wrong_or_missing_library_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # spandsp 3.x has another soname and other callback signatures.
    with pytest.raises(FaxError) as exc:
        sd.load_library("libspandsp.so.3")
    message = str(exc.value)
    assert "3.x found" in message and "0.0.6" in message and "apt-get install libspandsp2" in message

    # A library that is not spandsp 0.0.6 at all (here: the C library) lacks the symbols.
    libc = ctypes.util.find_library("c")
    assert libc is not None
    with pytest.raises(FaxError) as exc:
        sd.load_library(libc)
    assert "is not spandsp 0.0.6" in str(exc.value) and "fax_init" in str(exc.value)

    # Not installed at all.
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    with pytest.raises(FaxError) as exc:
        sd.load_library()
    assert "not installed" in str(exc.value) and "apt-get install libspandsp2" in str(exc.value)
