"""Issue 19, item 4: expected failures end in one `error:` line naming the setting or the
database, never a traceback, and nothing printed carries a statement's parameters (a password
hash, a phone number, a message). Real processes through the console script; the read-only and
locked databases are real PostgreSQL sessions (default_transaction_read_only, a table lock held
by the test with the command's lock_timeout short)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from segmint.cli import main
from tests.conftest import run_segmint

PASSWORD = "correct-horse-battery"


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str,
                          status: int = 1) -> str:
    """The command failed with exactly one line on stderr (log lines aside), starting with
    'error:' and holding every fragment; returns that line."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("20")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, folder: Path,
             *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    """segmint ARGS in this process (the console script's own main; an exception that escapes
    it is a traceback in a real process, so it fails the test), as a CompletedProcess."""
    monkeypatch.chdir(folder)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = 0
    try:
        main(list(args))
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), status, out, err)


def with_options(url: str, *options: str) -> str:
    """The test schema's URL with more server options (-c name=value), URL-encoded."""
    return url + "".join(f"%20-c{name}%3D{value}" for name, value in
                         (option.split("=", 1) for option in options))


@pytest.fixture
def pg_project(tmp_path: Path, postgres_url: str) -> tuple[Path, str]:
    """A folder with an empty config and a migrated PostgreSQL schema; its URL."""
    (tmp_path / "config.toml").write_text("")
    result = run_segmint("init-db", cwd=tmp_path, env={"SEGMINT_DATABASE_URL": postgres_url})
    assert result.returncode == 0, result.stderr
    return tmp_path, postgres_url


@pytest.fixture
def table_lock(postgres_url: str) -> Iterator[object]:
    """lock(table): hold an ACCESS EXCLUSIVE lock on table until the test ends."""
    engine = create_engine(postgres_url)
    connection = engine.connect()

    def lock(table: str) -> None:
        connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))

    yield lock
    connection.rollback()
    connection.close()
    engine.dispose()


@pytest.mark.postgres
def test_users_add_on_a_read_only_database_is_one_line_without_the_hash(pg_project) -> None:
    folder, url = pg_project
    env = {"SEGMINT_DATABASE_URL": with_options(url, "default_transaction_read_only=on")}
    result = run_segmint("users", "add", "bob", "--role", "analyst", cwd=folder, env=env,
                         input=PASSWORD + "\n")
    line = assert_one_error_line(result, "database postgresql+psycopg://", "read-only")
    assert "scrypt:" not in result.stderr and PASSWORD not in result.stderr
    assert "INSERT INTO" not in line and "parameters" not in result.stderr


@pytest.mark.postgres
def test_run_on_a_read_only_database_is_one_line(pg_project) -> None:
    folder, url = pg_project
    env = {"SEGMINT_DATABASE_URL": with_options(url, "default_transaction_read_only=on")}
    result = run_segmint("run", cwd=folder, env=env)
    assert_one_error_line(result, "database postgresql+psycopg://", "read-only")


@pytest.mark.postgres
@pytest.mark.parametrize("args, table", [
    (("users", "add", "bob", "--role", "analyst"), "dashboard_user"),
    (("run",), "segmentation_run"),
])
def test_a_locked_database_is_one_line(pg_project, table_lock, args, table) -> None:
    folder, url = pg_project
    table_lock(table)
    env = {"SEGMINT_DATABASE_URL": with_options(url, "lock_timeout=300")}
    result = run_segmint(*args, cwd=folder, env=env, input=PASSWORD + "\n")
    assert_one_error_line(result, "database postgresql+psycopg://", "lock")
    assert "scrypt:" not in result.stderr and PASSWORD not in result.stderr


# --- settings that cannot work ------------------------------------------------------------------


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.toml").write_bytes(b"[database]\necho = false # caf\xe9\n")
    result = run_segmint("--config", "latin1.toml", "runs", cwd=tmp_path)
    assert_one_error_line(result, "latin1.toml", "not UTF-8", "line 2")


@pytest.mark.parametrize("url, fragments", [
    ("postgresql://postgres@127.0.0.1:5432/test",
     ["postgresql://", "driver", "psycopg2", "postgresql+psycopg://"]),
    ("postgresql+psycopg://postgres@127.0.0.1:port/test", ["database URL", "does not parse"]),
    ("not a url at all", ["database URL", "does not parse"]),
])
@pytest.mark.parametrize("where", ["config", "environment"])
def test_a_database_url_that_cannot_work_is_one_line_naming_the_setting(
        capsys, monkeypatch, tmp_path: Path, url: str, fragments: list[str], where: str) -> None:
    if where == "config":
        (tmp_path / "config.toml").write_text(f'[database]\nurl = "{url}"\n')
        env = {"SEGMINT_DATABASE_URL": ""}
        setting = "database.url"
    else:
        (tmp_path / "config.toml").write_text("")
        env = {"SEGMINT_DATABASE_URL": url}
        setting = "SEGMINT_DATABASE_URL"
    result = run_main(capsys, monkeypatch, tmp_path, "runs", env=env)
    assert_one_error_line(result, setting, *fragments)


def test_a_database_url_that_does_not_parse_is_not_echoed_with_its_password(
        capsys, monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")
    env = {"SEGMINT_DATABASE_URL": "postgresql+psycopg://ann:hunter2@db:port/test"}
    result = run_main(capsys, monkeypatch, tmp_path, "runs", env=env)
    assert_one_error_line(result, "SEGMINT_DATABASE_URL")
    assert "hunter2" not in result.stderr


def test_quiet_start_21_is_one_line_at_start(tmp_path: Path) -> None:
    """quiet_start = 21 (a TOML integer) was accepted at load (as 00:00:21) and failed with a
    TypeError at send time; it is refused when the settings load, naming the key."""
    (tmp_path / "config.toml").write_text("[notifications]\nquiet_start = 21\n")
    result = run_segmint("send-offers", "--dry-run", cwd=tmp_path,
                         env={"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert_one_error_line(result, "config.toml", "notifications.quiet_start", "21:00")


@pytest.mark.parametrize("key", ["quiet_start", "quiet_end"])
@pytest.mark.parametrize("value", ["21", '"nine pm"', "21.5", "true", "75600"])
def test_quiet_hours_must_be_a_time_of_day(tmp_path: Path, key: str, value: str) -> None:
    from engine.settings import SettingsError, load_settings

    (tmp_path / "config.toml").write_text(f"[notifications]\n{key} = {value}\n")
    with pytest.raises(SettingsError, match=rf"notifications\.{key}: .*21:00"):
        load_settings(tmp_path / "config.toml", environ={})


@pytest.mark.parametrize("value", ["21:00:00", '"21:00"', '"21:00:00"'])
def test_quiet_hours_written_as_a_time_still_load(tmp_path: Path, value: str) -> None:
    from engine.settings import load_settings

    (tmp_path / "config.toml").write_text(f"[notifications]\nquiet_start = {value}\n")
    settings = load_settings(tmp_path / "config.toml", environ={})
    assert settings.notifications.quiet_start.hour == 21


# --- option errors ------------------------------------------------------------------------------


def test_a_bad_date_option_is_one_error_line_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")
    result = run_segmint("run", "--as-of", "2011-02-31", cwd=tmp_path,
                         env={"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert_one_error_line(result, "--as-of", "'2011-02-31' is not a date", status=2)


@pytest.mark.parametrize("args, fragments", [
    (("run", "--as-of", "2011-02-31"), ["--as-of", "'2011-02-31' is not a date"]),
    (("run", "--k", "99"), ["--k", "'99'"]),
    (("run", "--bogus"), ["--bogus"]),
    (("export", "nonsense"), ["nonsense", "segments"]),
    (("users", "add", "bob", "--role", "admin"), ["--role", "admin"]),
    (("nosuchcommand",), ["nosuchcommand"]),
])
def test_option_errors_are_one_error_line(capsys, monkeypatch, tmp_path: Path,
                                          args: tuple[str, ...], fragments: list[str]) -> None:
    """Click printed usage, a hint and 'Error: ...' (four lines); the README promises one line
    starting with 'error:'. Exit status 2 stays Click's (and POSIX utilities') usage status."""
    (tmp_path / "config.toml").write_text("")
    result = run_main(capsys, monkeypatch, tmp_path, *args,
                      env={"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    line = assert_one_error_line(result, *fragments, status=2)
    assert "--help" in line  # where to look next, on the same line


def test_statement_parameters_never_reach_an_error_message(tmp_path: Path) -> None:
    """Every engine Segmint makes hides statement parameters, so no traceback, log line or
    recorded job error (the scheduler stores one_line(exc)) can carry a password hash or a
    phone number."""
    from sqlalchemy.exc import DBAPIError

    from engine.store import get_engine, init_db

    engine = get_engine(f"sqlite:///{tmp_path / 'params.db'}")
    init_db(engine=engine)
    with pytest.raises(DBAPIError) as caught, engine.connect() as connection:
        connection.execute(text("SELECT :secret + no_such_column"), {"secret": "+447400123401"})
    assert "+447400123401" not in str(caught.value)
    assert "parameters hidden" in str(caught.value)
    engine.dispose()
