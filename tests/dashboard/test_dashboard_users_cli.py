"""`segmint users add|list` and `segmint serve` errors, through the real console script."""

from __future__ import annotations

from pathlib import Path

from werkzeug.security import check_password_hash

from engine.store import get_engine
from engine.store.users import find_user
from tests.conftest import run_segmint


def _env(tmp_path: Path) -> dict[str, str]:
    return {"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'segmint.db'}"}


def test_users_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert run_segmint("init-db", cwd=tmp_path, env=env).returncode == 0
    added = run_segmint("users", "add", "ann", "--role", "analyst", cwd=tmp_path, env=env,
                        input="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "user ann created (analyst)"
    user = find_user(engine=get_engine(env["SEGMINT_DATABASE_URL"]), username="ann")
    assert user is not None and user.role == "analyst"
    assert user.password_hash.startswith("scrypt:") and "s3cret-pass" not in user.password_hash
    assert check_password_hash(user.password_hash, "s3cret-pass")

    again = run_segmint("users", "add", "ann", "--role", "manager", cwd=tmp_path, env=env,
                        input="other-pass\n")
    assert again.stdout.strip() == "user ann updated (manager)"
    listed = run_segmint("users", "list", cwd=tmp_path, env=env)
    assert listed.stdout.splitlines() == ["ann\tmanager"]


def test_users_add_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path)
    run_segmint("init-db", cwd=tmp_path, env=env)
    empty = run_segmint("users", "add", "bob", "--role", "analyst", cwd=tmp_path, env=env,
                        input="")
    assert empty.returncode == 1 and empty.stderr.strip().startswith("error: empty password")
    role = run_segmint("users", "add", "bob", "--role", "admin", cwd=tmp_path, env=env,
                       input="pw-pw-pw-pw\n")
    assert role.returncode == 2 and "admin" in role.stderr and "Traceback" not in role.stderr


def test_serve_needs_a_schema(tmp_path: Path) -> None:
    served = run_segmint("serve", "--port", "1", cwd=tmp_path, env=_env(tmp_path), timeout=60)
    assert served.returncode == 1
    assert "segmint init-db" in served.stderr and "Traceback" not in served.stderr
