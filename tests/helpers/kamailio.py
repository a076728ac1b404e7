"""A private Kamailio for SIP tests: registrar with digest auth against a small subscriber table, and proxy
with record-route, on a free loopback UDP port, run in the foreground and stopped after the test.

The subscriber table is an ``htable`` filled at start-up (no database server needed); REGISTER is
challenged with 401 and INVITE from a subscriber with 407, as a carrier's SBC or a PBX would.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


CONFIG = r"""#!KAMAILIO
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="{modules}"

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "htable.so"

modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", {max_expires})
modparam("registrar", "min_expires", 5)
modparam("rr", "enable_full_lr", 1)
modparam("auth", "algorithm", "{algorithm}")
modparam("htable", "htable", "subscriber=>size=4;")
modparam("tm", "fr_timer", 10000)
modparam("tm", "fr_inv_timer", 90000)

event_route[htable:mod-init] {{
{subscribers}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            route(RELAY);
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    if (!is_method("ACK")) {{
        if (t_precheck_trans()) {{
            t_check_trans();
            exit;
        }}
        t_check_trans();
    }}
    remove_hf("Route");
    if (is_method("REGISTER")) {{
        if (is_present_hf("Authorization")) {{
            xlog("L_INFO", "REGISTER credentials: $hdr(Authorization)\n");
        }}
        if (!pv_auth_check("$fd", "$sht(subscriber=>$fU)", "0", "1")) {{
            auth_challenge("$fd", "1");
            exit;
        }}
        consume_credentials();
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        if ($sht(subscriber=>$fU) != $null) {{
            if (!pv_auth_check("$fd", "$sht(subscriber=>$fU)", "0", "1")) {{
                auth_challenge("$fd", "1");
                exit;
            }}
            consume_credentials();
        }}
        record_route();
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"""


@dataclass
class Kamailio:
    """One Kamailio process; ``restart()`` stops it and starts it again on the same port (bindings lost)."""

    workdir: Path
    subscribers: dict[str, str]
    port: int = 0
    max_expires: int = 3600
    algorithm: str = "MD5"
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        lines = "\n".join(f'    $sht(subscriber=>{user}) = "{password}";'
                          for user, password in self.subscribers.items())
        config = self.workdir / "kamailio.cfg"
        config.write_text(CONFIG.format(port=self.port, modules=MODULES, subscribers=lines,
                                        max_expires=self.max_expires, algorithm=self.algorithm))
        return config

    def start(self) -> None:
        if not self.port:
            self.port = free_udp_port()
        config = self.write_config()
        check = subprocess.run([KAMAILIO, "-c", "-f", str(config)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, f"kamailio config check failed:\n{check.stderr}"
        self.starts += 1
        log = self.workdir / f"kamailio-{self.starts}.log"
        self.logs.append(log)
        run = self.workdir / "run"
        run.mkdir(exist_ok=True)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [KAMAILIO, "-f", str(config), "-DD", "-E", "-m", "32", "-M", "4", "-Y", str(run),
                 "-P", str(run / "kamailio.pid")],
                stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"kamailio exited:\n{log.read_text()}")
            if self._answers_options():
                return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"kamailio did not answer OPTIONS:\n{log.read_text()}")

    def _answers_options(self) -> bool:
        request = (
            f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKprobe{time.monotonic_ns()};rport\r\n"
            "From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: probe{time.monotonic_ns()}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            sock.bind(("127.0.0.1", 0))
            sock.sendto(request.encode(), ("127.0.0.1", self.port))
            try:
                data = sock.recv(4096)
            except OSError:
                return False
        return data.startswith(b"SIP/2.0 200")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


@contextlib.contextmanager
def running_kamailio(workdir: Path, subscribers: dict[str, str], **kwargs: object) -> Iterator[Kamailio]:
    """A started Kamailio, stopped when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    kamailio = Kamailio(workdir, subscribers, **kwargs)  # type: ignore[arg-type]
    kamailio.start()
    try:
        yield kamailio
    finally:
        kamailio.stop()
