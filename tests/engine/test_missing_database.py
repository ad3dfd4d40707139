"""A SQLite database that does not exist yet is created by `segmint init-db` only: every other
command, the dashboard and the scheduler's jobs stop without leaving an empty file behind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from engine.settings import load_settings
from engine.store import StoreError, get_engine, init_db
from engine.store.db import check_connection, sqlite_file
from engine.store.lines_read import load_lines
from tests.conftest import form_token, run_segmint


def missing(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A database path in a folder that does not exist either, and the env naming it."""
    path = tmp_path / "var" / "none.db"
    return path, {"SEGMINT_DATABASE_URL": f"sqlite:///{path}"}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("command", [
    ["run"], ["runs"], ["jobs"], ["users", "list"], ["export", "segments"], ["send-offers"],
    ["evaluate"], ["scheduler"], ["serve", "--port", "1"],
])
def test_commands_refuse_a_missing_database_and_create_nothing(tmp_path: Path,
                                                               command: list[str]) -> None:
    path, env = missing(tmp_path)

    result = run_segmint(*command, cwd=tmp_path, env=env, timeout=120)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [
        f"error: database sqlite:///{path} does not exist: run `segmint init-db` first"]
    assert not path.exists()
    assert not path.parent.exists()


def test_init_db_creates_folder_and_file_then_commands_work(tmp_path: Path) -> None:
    path, env = missing(tmp_path)
    assert run_segmint("runs", cwd=tmp_path, env=env).returncode == 1

    created = run_segmint("init-db", cwd=tmp_path, env=env)

    assert created.returncode == 0, created.stderr
    assert path.is_file() and path.stat().st_size > 0
    runs = run_segmint("runs", "--json", cwd=tmp_path, env=env)
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.strip() == "[]"
    # `run` now gets past the database and stops on what it holds (no transactions yet).
    run = run_segmint("run", cwd=tmp_path, env=env)
    assert run.returncode == 1
    [line] = error_lines(run.stderr)
    assert "does not exist" not in line and "no Segmint schema" not in line


def test_a_relative_sqlite_path_is_created_by_init_db_only(tmp_path: Path) -> None:
    env = {"SEGMINT_DATABASE_URL": "sqlite:///data/segmint.db"}
    refused = run_segmint("runs", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "does not exist" in refused.stderr
    assert not (tmp_path / "data").exists()

    created = run_segmint("init-db", cwd=tmp_path, env=env)

    assert created.returncode == 0, created.stderr
    assert (tmp_path / "data" / "segmint.db").is_file()
    assert run_segmint("runs", cwd=tmp_path, env=env).returncode == 0


def test_an_engine_never_creates_the_file_it_is_pointed_at(tmp_path: Path) -> None:
    path, env = missing(tmp_path)
    engine = get_engine(env["SEGMINT_DATABASE_URL"])

    with pytest.raises(StoreError, match="does not exist: run `segmint init-db` first"):
        check_connection(engine=engine)
    with pytest.raises(OperationalError):  # a direct connection is refused by SQLite itself
        engine.connect().close()
    assert not path.parent.exists()

    init_db(engine=engine)
    check_connection(engine=engine)
    assert path.is_file()
    engine.dispose()


def test_in_memory_and_server_urls_have_no_file() -> None:
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("sqlite:///file:x.db?mode=ro&uri=true") is None
    assert sqlite_file("postgresql+psycopg://user:secret@db/segmint") is None
    assert sqlite_file("sqlite:////srv/segmint.db") == Path("/srv/segmint.db")
    engine = get_engine("sqlite://")
    assert init_db(engine=engine)
    check_connection(engine=engine)


def test_dashboard_against_a_missing_database_creates_no_file(tmp_path: Path) -> None:
    from dashboard.app import create_server

    path, env = missing(tmp_path)
    (tmp_path / "config.toml").write_text("")
    settings = load_settings(tmp_path / "config.toml", environ=env)
    client = create_server(settings, secret_key="k" * 32).test_client()

    token = form_token(client.get("/login").get_data(as_text=True))  # needs no database
    response = client.post("/login", data={"username": "bob", "password": "pw",
                                           "csrf_token": token})

    assert response.status_code == 500
    assert not path.exists()


def test_scheduled_job_against_a_missing_database_logs_one_line_and_creates_no_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs.tasks import run_pipeline

    path, env = missing(tmp_path)
    monkeypatch.delenv("SEGMINT_DATABASE_URL", raising=False)
    (tmp_path / "config.toml").write_text(f'[database]\nurl = "sqlite:///{path}"\n')

    with caplog.at_level(logging.ERROR):
        run_pipeline(str(tmp_path / "config.toml"), trigger="test")

    assert "does not exist: run `segmint init-db` first" in caplog.text
    assert not path.exists()


def test_a_relative_path_stays_the_file_it_named_after_a_chdir(tmp_path: Path,
                                                              monkeypatch) -> None:
    name = f"rel-{tmp_path.name}.db"  # engines are cached per URL: one of this test's own
    monkeypatch.chdir(tmp_path)
    init_db(engine=get_engine(f"sqlite:///{name}"))
    engine = get_engine(f"sqlite:///{name}")
    assert engine.url.database == str(tmp_path / name)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    # The connection and the lines reader (which opens engine.url's file) agree on the file.
    assert sqlite_file(engine.url) == tmp_path / name
    assert load_lines(engine=engine).empty
    assert not (tmp_path / "sub" / name).exists()
