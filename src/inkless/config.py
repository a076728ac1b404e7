"""Settings, read once from ``DATA/inkless.toml`` and ``INKLESS_*`` environment variables.

Precedence, lowest first: built-in defaults, ``inkless.toml`` in the data folder,
environment variables. Unknown keys in either place are an error, so that a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import tomli_w

from inkless import timefmt
from inkless.errors import ConfigurationError

CONFIG_FILE = "inkless.toml"
ENV_PREFIX = "INKLESS_"
# Variables that are not settings keys but are read elsewhere (tests, the data folder itself).
_ENV_NOT_SETTINGS = {"INKLESS_DATA", "INKLESS_TEST_POSTGRES_URL", "INKLESS_MASTER_KEY"}

NODE_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
LANGUAGES = ("ja", "en")
FAX_LINES = ("loopback", "spool", "sip", "none")
BLOB_STORES = ("auto", "files", "database")
# The shortest fax_fallback_after_minutes: 0.1 min = 6 s, about the time a peer needs to answer a probe.
FALLBACK_MIN_MINUTES = 0.1
MAX_FAX_RENDER_PROCESSES = 64


@dataclass(frozen=True)
class Settings:
    """Everything a node needs to know before it starts; immutable once read."""

    data_dir: Path
    node_id: str = "node"
    organisation: str = ""
    base_url: str = "http://127.0.0.1:8080"
    database_url: str = ""
    database_lock_timeout_seconds: int = 30  # how long SQLite waits for another process's write lock
    blob_dir: Path = field(default=Path())
    # Where blobs live: "auto" = in the database on PostgreSQL, in blob_dir on SQLite; or "files" / "database".
    blob_store: str = "auto"
    master_key_file: Path = field(default=Path())
    host: str = "127.0.0.1"
    port: int = 8080
    default_language: str = "ja"
    timezone: str = "Asia/Tokyo"  # IANA zone in which people read times (pages, PDFs, fax); storage stays UTC
    session_minutes: int = 480
    login_max_failures: int = 5
    login_window_seconds: int = 900
    login_backoff_seconds: int = 30
    login_address_max_failures: int = 30
    public_requests_per_minute: int = 30
    audit_tally_seconds: int = 3600
    tree_head_interval_seconds: int = 60
    # Witnessing (docs/audit.md): how often workers check and cosign pinned peers' tree heads; 0 = never.
    audit_witness_interval_seconds: int = 300
    # Where every signed tree head is also written, one file each, never overwritten (WORM); empty = nowhere.
    audit_head_export_dir: Path = field(default=Path())
    max_message_bytes: int = 100 * 1024 * 1024
    # Request bodies (see inkless.web.limits and docs/deployment.md).
    verify_max_bytes: int = 50 * 1024 * 1024  # the public /verify and /api/v1/verify
    body_login_max_bytes: int = 8 * 1024  # the login steps and logout
    body_max_bytes: int = 64 * 1024  # every other route without an upload
    body_timeout_seconds: int = 20  # a body must arrive within this, plus 1 s per body_min_rate_bytes
    body_min_rate_bytes: int = 50_000
    form_max_parts: int = 100  # parts of a multipart form (files and fields)
    form_field_max_bytes: int = 64 * 1024  # one text field of a multipart form
    uploads_in_flight: int = 4  # large bodies read at once (uploads; /verify has as many again)
    max_connections: int = 256  # open connections of inkless serve; more are answered 503
    delivery_expiry_hours: int = 72
    delivery_backoff_base_seconds: int = 30
    delivery_backoff_cap_seconds: int = 3600
    delivery_poll_seconds: int = 2
    directory_refresh_seconds: int = 3600
    delivery_lease_seconds: int = 300
    delivery_concurrency: int = 4  # deliveries of one outbox pass in flight at once (to peers and offices)
    workers: bool = True
    blob_gc_grace_hours: int = 24  # a blob no record names is deleted once it is this old
    log_level: str = "INFO"
    tsa_url: str = ""  # an external RFC 3161 TSA for seals; empty = the node's own TSA
    # The fax service: outbound retry schedule defaults (sendfax -t / -I / -k), OCR, disaster fallback.
    fax_tries: int = 3
    fax_retry_interval_seconds: int = 300
    fax_kill_time_minutes: int = 180
    fax_poll_seconds: int = 2
    fax_ocr_languages: str = "jpn+eng"
    # Minutes (fractions allowed, at least FALLBACK_MIN_MINUTES) a peer must be unreachable before the fallback.
    fax_fallback_after_minutes: float = 60.0
    # The fax engine: the line driver that carries calls, and where its socket / spool folder live.
    fax_line: str = "loopback"  # loopback | spool | sip | none
    fax_ident: str = ""  # station id (CSI) to answer with; empty = the number that was called
    fax_loopback_socket: Path = field(default=Path())  # inbound calls; default DATA/fax/loopback.sock
    fax_loopback_remote: Path = field(default=Path())  # where outbound calls go; default DATA/fax/remote.sock
    fax_spool_dir: Path = field(default=Path())  # default DATA/fax/spool
    fax_max_calls: int = 8  # simultaneous calls a line takes; more get "busy"
    # Processes that draw a long fax's pages (docs/fax-rendering.md): 0 = one per core (at most 8), 1 = no pool.
    fax_render_processes: int = 0
    # The SIP line (fax_line = "sip"): see docs/fax-sip.md.
    fax_sip_listen: str = "0.0.0.0:5060"  # HOST:PORT for SIP over UDP
    fax_sip_registrar: str = ""  # sip:HOST:PORT; empty = no registration
    fax_sip_username: str = ""
    fax_sip_password: str = ""
    fax_sip_password_file: Path = field(default=Path())  # mode 0600; instead of fax_sip_password
    fax_sip_gateways: str = ""  # sip:HOST:PORT,... tried in order for outbound calls
    fax_sip_rtp_ports: str = "20000-20999"
    fax_sip_t38: str = "accept"  # prefer | accept | off
    fax_sip_codecs: str = "PCMU,PCMA"
    fax_sip_trusted_sources: str = ""  # addresses / networks allowed to send INVITEs
    # Outgoing e-mail (notices, one-time codes) through the mail outbox: see docs/external.md.
    smtp_url: str = ""  # smtp://[USER[:PASSWORD]@]HOST[:PORT][?starttls=require|off] or smtps://…; empty = no mail
    smtp_from: str = ""  # the From address, e.g. "浦安市 市民課 <no-reply@city.example.lg.jp>"
    smtp_reply_to: str = ""  # Reply-To, e.g. the office's contact address; empty = none
    smtp_password_file: Path = field(default=Path())  # mode 0600; instead of a password in smtp_url
    smtp_ca_file: Path = field(default=Path())  # PEM CAs to trust for the server's certificate; default: system CAs
    smtp_timeout_seconds: int = 30
    mail_expiry_hours: int = 72  # a mail not accepted by the server within this is given up (expired)
    mail_backoff_base_seconds: int = 60
    mail_backoff_cap_seconds: int = 3600
    mail_poll_seconds: int = 2
    pickup_expiry_days: int = 7  # how long a secure-pickup link works (offices may set their own)
    # The public intake window (see docs/external.md).
    intake_max_bytes: int = 50 * 1024 * 1024  # one intake form with its files, before any office limit
    intake_address_per_minute: int = 3  # codes mailed per address and minute (per IP: public_requests_per_minute)
    clamd_socket: str = ""  # clamd's Unix socket (/run/clamav/clamd.ctl) or tcp:HOST:PORT; empty = no virus scan
    # OpenMetrics without authentication on a separate HOST:PORT (e.g. 127.0.0.1:9464); empty = off.
    metrics_listen: str = ""

    @property
    def max_envelope_bytes(self) -> int:
        """The largest envelope the node takes from a peer: ``max_message_bytes`` of documents with their
        base64 (a third more), CMS and metadata, so that a message at the limit can cross between nodes."""
        return int(self.max_message_bytes * 1.5) + 65536

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``: the kind of database in use."""
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"

    @property
    def blobs_in_database(self) -> bool:
        """Whether blobs live in the database (``blob_store``; "auto" means: on PostgreSQL)."""
        return self.blob_store == "database" or (self.blob_store == "auto" and self.backend == "postgresql")

    @property
    def tz(self) -> ZoneInfo:
        """The zone of ``timezone``, in which every time shown to a person is written."""
        return ZoneInfo(self.timezone)

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE


# Keys that may appear in inkless.toml / INKLESS_* (data_dir is given by --data / INKLESS_DATA).
_KEYS = {f.name: f for f in fields(Settings) if f.name != "data_dir"}


def _coerce(name: str, value: Any, source: str) -> Any:
    target = _KEYS[name].type
    try:
        if target in ("int", int):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if target in ("float", float):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        if target in ("bool", bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if target in ("Path", Path):
            return Path(str(value))
        if not isinstance(value, str):
            raise ValueError
        return value
    except ValueError:
        raise ConfigurationError(
            f"{source}: {name} = {value!r} is not a valid {getattr(target, '__name__', target)}"
        ) from None


def _validate(settings: Settings) -> None:
    if not NODE_ID_RE.match(settings.node_id):
        raise ConfigurationError(
            f"node_id {settings.node_id!r} must be 1-32 lower-case letters, digits or '-' (e.g. 'moj')"
        )
    if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", settings.base_url):
        raise ConfigurationError(f"base_url {settings.base_url!r} must be an http:// or https:// URL")
    if settings.tsa_url and not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", settings.tsa_url):
        raise ConfigurationError(f"tsa_url {settings.tsa_url!r} must be an http:// or https:// URL (or empty)")
    if not (settings.database_url.startswith("sqlite") or settings.database_url.startswith("postgresql")):
        raise ConfigurationError(
            f"database_url {settings.database_url!r}: only sqlite:/// and postgresql+psycopg:// are supported"
        )
    if not 0 < settings.port < 65536:
        raise ConfigurationError(f"port {settings.port} is out of range (1-65535)")
    if settings.blob_store not in BLOB_STORES:
        raise ConfigurationError(f"blob_store {settings.blob_store!r} must be one of {', '.join(BLOB_STORES)}")
    if settings.blob_store == "database" and settings.backend != "postgresql":
        raise ConfigurationError(
            "blob_store = \"database\" needs PostgreSQL (database_url = postgresql+psycopg://…); "
            "on SQLite blobs live in blob_dir"
        )
    if settings.fax_line not in FAX_LINES:
        raise ConfigurationError(f"fax_line {settings.fax_line!r} must be one of {', '.join(FAX_LINES)}")
    if settings.fax_max_calls <= 0:
        raise ConfigurationError("fax_max_calls must be positive")
    if not 0 <= settings.fax_render_processes <= MAX_FAX_RENDER_PROCESSES:
        raise ConfigurationError(
            f"fax_render_processes must be 0 (one per core), 1 (no pool) or up to {MAX_FAX_RENDER_PROCESSES}"
        )
    from inkless.fax.sip.options import sip_options

    # Checked on every node (a typo must not wait for the day the line is switched to sip);
    # the password file is opened only when the sip line is in use.
    sip_options(settings, read_secret=settings.fax_line == "sip")
    from inkless.mail.options import smtp_options

    smtp_options(settings, read_secret=False)
    timefmt.zone(settings.timezone)  # an unknown zone is a ConfigurationError naming the key
    if settings.default_language not in LANGUAGES:
        raise ConfigurationError(f"default_language must be one of {', '.join(LANGUAGES)}")
    for name in ("database_lock_timeout_seconds", "blob_gc_grace_hours",
                 "session_minutes", "login_max_failures", "login_window_seconds", "login_backoff_seconds",
                 "login_address_max_failures", "public_requests_per_minute", "audit_tally_seconds",
                 "tree_head_interval_seconds", "max_message_bytes", "delivery_expiry_hours",
                 "delivery_backoff_base_seconds", "delivery_backoff_cap_seconds", "delivery_poll_seconds",
                 "directory_refresh_seconds", "delivery_lease_seconds", "delivery_concurrency", "verify_max_bytes",
                 "body_login_max_bytes", "body_max_bytes", "body_timeout_seconds", "body_min_rate_bytes",
                 "form_max_parts", "form_field_max_bytes", "uploads_in_flight", "max_connections",
                 "smtp_timeout_seconds", "mail_expiry_hours", "mail_backoff_base_seconds",
                 "mail_backoff_cap_seconds", "mail_poll_seconds", "pickup_expiry_days",
                 "intake_max_bytes", "intake_address_per_minute"):
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"{name} must be positive")
    if settings.audit_witness_interval_seconds < 0:
        raise ConfigurationError("audit_witness_interval_seconds must be 0 (off) or positive")
    for name in ("fax_tries", "fax_retry_interval_seconds", "fax_kill_time_minutes", "fax_poll_seconds"):
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"{name} must be positive")
    if settings.fax_fallback_after_minutes < FALLBACK_MIN_MINUTES:
        raise ConfigurationError(
            f"fax_fallback_after_minutes = {settings.fax_fallback_after_minutes:g} is too short: give minutes, "
            f"fractions allowed, at least {FALLBACK_MIN_MINUTES:g} (e.g. 0.5 for 30 seconds, 60 for an hour)"
        )
    if not re.match(r"^[a-z_]{3,}(\+[a-z_]{3,})*$", settings.fax_ocr_languages):
        raise ConfigurationError(
            f"fax_ocr_languages {settings.fax_ocr_languages!r} must be Tesseract languages joined by '+' (jpn+eng)"
        )


def load_settings(
    data_dir: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the settings of the node whose data folder is ``data_dir`` (default ``$INKLESS_DATA``)."""
    env = os.environ if env is None else env
    if data_dir is None:
        data_dir = env.get("INKLESS_DATA")
    if not data_dir:
        raise ConfigurationError("no data folder: pass --data DIR or set INKLESS_DATA")
    root = Path(data_dir).expanduser().resolve()
    values: dict[str, Any] = {}

    path = root / CONFIG_FILE
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: not valid TOML ({exc})") from None
        for key, value in raw.items():
            if key not in _KEYS:
                raise ConfigurationError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(_KEYS))})")
            values[key] = _coerce(key, value, str(path))

    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var in _ENV_NOT_SETTINGS:
            continue
        key = var[len(ENV_PREFIX):].lower()
        if key not in _KEYS:
            raise ConfigurationError(f"unknown environment variable {var}")
        values[key] = _coerce(key, value, var)

    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, "command line")

    settings = Settings(data_dir=root, **values)
    # Paths relative to the data folder, and defaults that depend on it.
    repl: dict[str, Any] = {}
    if not settings.database_url:
        repl["database_url"] = f"sqlite:///{root / 'inkless.db'}"
    repl["blob_dir"] = root / "blobs" if settings.blob_dir == Path() else root / settings.blob_dir
    repl["master_key_file"] = (
        root / "master.key" if settings.master_key_file == Path() else root / settings.master_key_file
    )
    for key, default in (
        ("fax_loopback_socket", "fax/loopback.sock"),
        ("fax_loopback_remote", "fax/remote.sock"),
        ("fax_spool_dir", "fax/spool"),
    ):
        value = getattr(settings, key)
        repl[key] = root / (default if value == Path() else value)
    for key in ("fax_sip_password_file", "smtp_password_file", "smtp_ca_file", "audit_head_export_dir"):
        if getattr(settings, key) != Path():
            repl[key] = root / getattr(settings, key)
    settings = dataclasses.replace(settings, **repl)
    _validate(settings)
    return settings


def write_config(data_dir: Path, values: Mapping[str, Any]) -> Path:
    """Write ``inkless.toml`` with the given keys (used by ``inkless init``)."""
    for key in values:
        if key not in _KEYS:
            raise ConfigurationError(f"unknown setting {key!r}")
    path = data_dir / CONFIG_FILE
    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
    path.write_text(
        "# inkless node settings; every key may be overridden by INKLESS_<KEY> in the environment.\n"
        + tomli_w.dumps(clean),
        encoding="utf-8",
    )
    return path
