"""A small, version-checked ctypes binding to spandsp 0.0.6 (Debian ``libspandsp2``).

Only the calls a fax terminal needs are bound: the audio terminal (``fax_*``),
the T.38 terminal (``t38_terminal_*``, ``t38_core_rx_ifp_packet``) and the
T.30 engine they share (files, identities, ECM, compressions, phase-E handler,
transfer statistics). Prototypes are copied from the 0.0.6 headers; the
callback signatures changed in spandsp 3.x, which is why the library version
is checked when it is loaded rather than trusted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_int16,
    c_uint8,
    c_uint16,
    c_void_p,
)
from typing import Any

from inkless.errors import FaxError

REQUIRED_VERSION = "0.0.6"
REQUIRED_SONAME = "libspandsp.so.2"
INSTALL_HINT = "apt-get install libspandsp2"

# A symbol that spandsp gained in 0.0.6 (page header time zones); 0.0.5 lacks it.
_MARKER_0_0_6 = "t30_set_tx_page_header_tz"

# T.30 completion codes (t30.h, enum t30_err_e) that callers tell apart.
T30_ERR_OK = 0
T30_ERR_CALLDROPPED = 49

# T.30 supported compressions (t30.h).
T30_SUPPORT_T4_1D_COMPRESSION = 0x02
T30_SUPPORT_T4_2D_COMPRESSION = 0x04
T30_SUPPORT_T6_COMPRESSION = 0x08

# T.30 supported modems (t30.h).
T30_SUPPORT_V27TER = 0x01
T30_SUPPORT_V29 = 0x02
T30_SUPPORT_V17 = 0x04

# T.4 encodings (t4_rx.h, t4_image_compression_t).
T4_COMPRESSION_ITU_T4_1D = 1
T4_COMPRESSION_ITU_T4_2D = 2
T4_COMPRESSION_ITU_T6 = 3
ENCODING_NAMES = {
    0: "none",
    T4_COMPRESSION_ITU_T4_1D: "T.4 1D MH",
    T4_COMPRESSION_ITU_T4_2D: "T.4 2D MR",
    T4_COMPRESSION_ITU_T6: "T.6 MMR",
}

# T.38 terminal options (t38_terminal.h).
T38_TERMINAL_OPTION_NO_PACING = 0x01

# T.38 packet categories (t38_core.h, t38_packet_categories_e) for redundancy control.
T38_PACKET_CATEGORY_INDICATOR = 0
T38_PACKET_CATEGORY_CONTROL_DATA = 1
T38_PACKET_CATEGORY_CONTROL_DATA_END = 2
T38_PACKET_CATEGORY_IMAGE_DATA = 3
T38_PACKET_CATEGORY_IMAGE_DATA_END = 4

# void (*)(t30_state_t *s, void *user_data, int completion_code)  -- 0.0.6 (3.x dropped the state argument)
PhaseEHandler = CFUNCTYPE(None, c_void_p, c_void_p, c_int)
# int (*)(t38_core_state_t *s, void *user_data, const uint8_t *buf, int len, int count)
T38TxPacketHandler = CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(c_uint8), c_int, c_int)
# void (*)(t30_state_t *s, void *user_data, int direction, const uint8_t *msg, int len)  -- every T.30 frame
RealTimeFrameHandler = CFUNCTYPE(None, c_void_p, c_void_p, c_int, POINTER(c_uint8), c_int)

# T.30 frame control fields (t30_fcf.h) the phase tracking tells apart; the low bit is the X bit.
T30_DIS = 0x80
T30_DTC = 0x81
T30_DCS = 0x82
T30_CFR = 0x84
T30_FTT = 0x44
T30_MCF = 0x8C
T30_MPS = 0x4E
T30_EOP = 0x2E
T30_EOM = 0x8E
T30_PPS = 0xBE
T30_EOR = 0xCE
T30_DCN = 0xFA

# T.38 data rate management (t38_core.h).
T38_DATA_RATE_MANAGEMENT_LOCAL_TCF = 1
T38_DATA_RATE_MANAGEMENT_TRANSFERRED_TCF = 2


class T30Stats(Structure):
    """``t30_stats_t`` exactly as laid out in spandsp 0.0.6's t30.h."""

    _fields_ = [
        ("bit_rate", c_int),
        ("error_correcting_mode", c_int),
        ("pages_tx", c_int),
        ("pages_rx", c_int),
        ("pages_in_file", c_int),
        ("x_resolution", c_int),  # pixels per metre
        ("y_resolution", c_int),  # pixels per metre
        ("width", c_int),
        ("length", c_int),
        ("image_size", c_int),
        ("encoding", c_int),
        ("bad_rows", c_int),
        ("longest_bad_row_run", c_int),
        ("error_correcting_mode_retries", c_int),
        ("current_status", c_int),
    ]


# name: (restype, argtypes)
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "fax_init": (c_void_p, [c_void_p, c_int]),
    "fax_release": (c_int, [c_void_p]),
    "fax_free": (c_int, [c_void_p]),
    "fax_rx": (c_int, [c_void_p, POINTER(c_int16), c_int]),
    "fax_tx": (c_int, [c_void_p, POINTER(c_int16), c_int]),
    "fax_get_t30_state": (c_void_p, [c_void_p]),
    "fax_set_transmit_on_idle": (None, [c_void_p, c_int]),
    "t30_set_tx_file": (None, [c_void_p, c_char_p, c_int, c_int]),
    "t30_set_rx_file": (None, [c_void_p, c_char_p, c_int]),
    "t30_set_tx_ident": (c_int, [c_void_p, c_char_p]),
    "t30_get_rx_ident": (c_char_p, [c_void_p]),
    "t30_set_tx_sub_address": (c_int, [c_void_p, c_char_p]),
    "t30_get_rx_sub_address": (c_char_p, [c_void_p]),
    "t30_set_ecm_capability": (c_int, [c_void_p, c_int]),
    "t30_set_supported_compressions": (c_int, [c_void_p, c_int]),
    "t30_set_supported_modems": (c_int, [c_void_p, c_int]),
    "t30_set_supported_t30_features": (c_int, [c_void_p, c_int]),
    "t30_set_rx_encoding": (c_int, [c_void_p, c_int]),
    "t30_set_phase_e_handler": (None, [c_void_p, PhaseEHandler, c_void_p]),
    "t30_get_transfer_statistics": (None, [c_void_p, POINTER(T30Stats)]),
    "t30_completion_code_to_str": (c_char_p, [c_int]),
    "t30_call_active": (c_int, [c_void_p]),
    "t30_terminate": (None, [c_void_p]),
    "t30_set_real_time_frame_handler": (None, [c_void_p, RealTimeFrameHandler, c_void_p]),
    "t38_terminal_init": (c_void_p, [c_void_p, c_int, T38TxPacketHandler, c_void_p]),
    "t38_terminal_release": (c_int, [c_void_p]),
    "t38_terminal_free": (c_int, [c_void_p]),
    "t38_terminal_get_t30_state": (c_void_p, [c_void_p]),
    "t38_terminal_get_t38_core_state": (c_void_p, [c_void_p]),
    "t38_terminal_send_timeout": (c_int, [c_void_p, c_int]),
    "t38_terminal_set_config": (None, [c_void_p, c_int]),
    "t38_core_rx_ifp_packet": (c_int, [c_void_p, POINTER(c_uint8), c_int, c_uint16]),
    "t38_set_redundancy_control": (None, [c_void_p, c_int, c_int]),
    "t38_set_t38_version": (None, [c_void_p, c_int]),
    "t38_set_max_datagram_size": (None, [c_void_p, c_int]),
    "t38_set_fill_bit_removal": (None, [c_void_p, c_int]),
    "t38_set_data_rate_management_method": (None, [c_void_p, c_int]),
    _MARKER_0_0_6: (c_int, [c_void_p, c_char_p]),
}


class SpanDSP:
    """The loaded library with typed functions; obtain it with :func:`load`."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.path = path
        self._lib = lib
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set in __init__: a prototype that is not bound.
        raise AttributeError(f"spandsp binding has no function {name!r}")

    def completion_text(self, code: int) -> str:
        """The T.30 phase E completion code as spandsp describes it."""
        raw: bytes | None = self.t30_completion_code_to_str(code)
        return raw.decode("ascii", "replace") if raw else f"T.30 error {code}"


_loaded: SpanDSP | None = None
_lock = threading.Lock()


def _soname_of(path: str) -> str:
    return os.path.basename(path)


def load_library(name: str | None = None) -> SpanDSP:
    """Load and check spandsp from ``name`` (a file or soname; default: the system's libspandsp)."""
    if name is None:
        name = ctypes.util.find_library("spandsp")
        if name is None:
            raise FaxError(
                f"spandsp {REQUIRED_VERSION} is not installed (no libspandsp found): {INSTALL_HINT}"
            )
    soname = _soname_of(name)
    if soname.startswith("libspandsp.so.") and soname != REQUIRED_SONAME:
        found = "3.x" if soname.startswith("libspandsp.so.3") else soname
        raise FaxError(
            f"spandsp {found} found ({soname}), but inkless needs spandsp {REQUIRED_VERSION}"
            f" ({REQUIRED_SONAME}): {INSTALL_HINT}"
        )
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise FaxError(f"cannot load spandsp from {name} ({exc}): {INSTALL_HINT}") from None
    missing = [fn for fn in _PROTOTYPES if not hasattr(lib, fn)]
    if missing:
        raise FaxError(
            f"{name} is not spandsp {REQUIRED_VERSION} (lacks {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}): {INSTALL_HINT}"
        )
    return SpanDSP(lib, name)


def spandsp() -> SpanDSP:
    """The process-wide checked spandsp library (loaded on first use)."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = load_library()
        return _loaded
