"""Settings: defaults, file, environment, and every way they can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from inkless.config import load_settings, write_config
from inkless.errors import ConfigurationError


def test_defaults_live_in_the_data_folder(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    assert s.data_dir == tmp_path.resolve()
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'inkless.db'}"
    assert s.blob_dir == tmp_path.resolve() / "blobs"
    assert s.master_key_file == tmp_path.resolve() / "master.key"
    assert s.backend == "sqlite"
    assert s.default_language == "ja"


def test_file_then_environment_then_command_line(tmp_path: Path) -> None:
    write_config(tmp_path, {"node_id": "moj", "port": 9000, "organisation": "法務省"})
    s = load_settings(tmp_path, env={"INKLESS_PORT": "9100"}, overrides={"host": "0.0.0.0"})
    assert (s.node_id, s.port, s.host, s.organisation) == ("moj", 9100, "0.0.0.0", "法務省")


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_postgres_url_switches_backend(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={"INKLESS_DATABASE_URL": "postgresql+psycopg://u@h/db"})
    assert s.backend == "postgresql"


def test_data_folder_from_environment(tmp_path: Path) -> None:
    assert load_settings(None, env={"INKLESS_DATA": str(tmp_path)}).data_dir == tmp_path.resolve()


def test_no_data_folder_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="--data"):
        load_settings(None, env={})


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "inkless.toml").write_text('node_id = "moj"\nprot = 8080\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="unknown setting 'prot'"):
        load_settings(tmp_path, env={})


def test_unknown_environment_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="INKLESS_PROT"):
        load_settings(tmp_path, env={"INKLESS_PROT": "1"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INKLESS_PORT": "eighty"}, "port"),
        ({"INKLESS_PORT": "70000"}, "out of range"),
        ({"INKLESS_NODE_ID": "Bad Node"}, "node_id"),
        ({"INKLESS_BASE_URL": "ftp://x"}, "base_url"),
        ({"INKLESS_DATABASE_URL": "mysql://x/y"}, "database_url"),
        ({"INKLESS_DEFAULT_LANGUAGE": "fr"}, "default_language"),
        ({"INKLESS_WORKERS": "perhaps"}, "workers"),
        ({"INKLESS_SESSION_MINUTES": "0"}, "session_minutes"),
        ({"INKLESS_FAX_RENDER_PROCESSES": "-1"}, "fax_render_processes"),
        ({"INKLESS_FAX_RENDER_PROCESSES": "65"}, "fax_render_processes"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(tmp_path, env=env)


def test_broken_toml_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "inkless.toml").write_text("node_id = \n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(tmp_path, env={})


def test_wrong_type_in_file(tmp_path: Path) -> None:
    (tmp_path / "inkless.toml").write_text('port = "8080x"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="port"):
        load_settings(tmp_path, env={})


@pytest.mark.parametrize(("value", "minutes"), [("0.5", 0.5), ("0.1", 0.1), ("1.5", 1.5), ("90", 90.0)])
def test_fallback_delay_accepts_fractional_minutes(tmp_path: Path, value: str, minutes: float) -> None:
    settings = load_settings(tmp_path, env={"INKLESS_FAX_FALLBACK_AFTER_MINUTES": value})
    assert settings.fax_fallback_after_minutes == minutes


def test_fallback_delay_from_the_file_keeps_its_fraction(tmp_path: Path) -> None:
    (tmp_path / "inkless.toml").write_text("fax_fallback_after_minutes = 1.5\n", encoding="utf-8")
    assert load_settings(tmp_path, env={}).fax_fallback_after_minutes == 1.5  # not silently 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", r"fax_fallback_after_minutes = 0 is too short: .*at least 0\.1"),
        ("0.05", r"fax_fallback_after_minutes = 0\.05 is too short"),
        ("-5", r"fax_fallback_after_minutes = -5 is too short"),
        ("nan", r"fax_fallback_after_minutes = 'nan' is not a valid float"),
        ("1h", r"fax_fallback_after_minutes = '1h' is not a valid float"),
    ],
)
def test_fallback_delay_out_of_range_is_a_clear_error(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(tmp_path, env={"INKLESS_FAX_FALLBACK_AFTER_MINUTES": value})


def test_blobs_follow_the_database_unless_a_setting_says_otherwise(tmp_path: Path) -> None:
    pg = "postgresql+psycopg://u@db/x"
    assert not load_settings(tmp_path, env={}).blobs_in_database
    assert load_settings(tmp_path, env={"INKLESS_DATABASE_URL": pg}).blobs_in_database
    forced = load_settings(tmp_path, env={"INKLESS_DATABASE_URL": pg, "INKLESS_BLOB_STORE": "files"})
    assert not forced.blobs_in_database
    with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
        load_settings(tmp_path, env={"INKLESS_BLOB_STORE": "database"})
    with pytest.raises(ConfigurationError, match="blob_store 'disk' must be one of auto, files, database"):
        load_settings(tmp_path, env={"INKLESS_BLOB_STORE": "disk"})
