"""Failed sign-ins are throttled per user and per client address, across workers (issue 19
item 9): two app instances (two gunicorn workers' worth) sharing a real redis-server, driven by
Flask's test client. Before: 100 wrong passwords in 12 s, then the right one worked."""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from dashboard.app import create_server
from dashboard.auth import hash_password
from engine.store import get_engine, init_db
from engine.store.users import save_user
from tests.conftest import make_settings

PASSWORDS = {"ann": "ann-analyst-pw", "max": "max-manager-pw"}
LIMITS = """
[dashboard]
rate_limit_storage = "{storage}"
login_limits_per_user = "3 per minute; 6 per hour"
login_limits_per_address = "8 per minute"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _workers(folder: Path, storage: str, count: int) -> list[Any]:
    settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}",
                             LIMITS.format(storage=storage))
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    for name, password in PASSWORDS.items():
        save_user(engine=engine, username=name, password_hash=hash_password(password),
                  role="analyst")
    engine.dispose()
    return [create_server(settings, secret_key="test-secret") for _ in range(count)]


def _sign_in(server: Any, user: str, password: str, address: str) -> Any:
    client: FlaskClient = server.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return client.post("/login", data={"username": user, "password": password,
                                       "csrf_token": token.group(1)})


def test_failures_on_one_worker_throttle_the_user_on_another(
        tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    first, second = _workers(tmp_path, redis_url, 2)
    for _ in range(3):
        assert _sign_in(first, "ann", "wrong", "10.0.0.1").status_code == 401
    caplog.set_level(logging.WARNING, logger="dashboard.security")
    # The right password, from another worker and another address: the account waits.
    refused = _sign_in(second, "ann", PASSWORDS["ann"], "10.0.0.2")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert any("sign-in throttled for 'ann'" in record.getMessage()
               for record in caplog.records)
    # Another account from the same addresses is not held up by ann's failures.
    assert _sign_in(second, "max", PASSWORDS["max"], "10.0.0.1").status_code == 302


def test_failures_from_one_address_throttle_every_account_from_it(
        tmp_path: Path, redis_url: str) -> None:
    first, second = _workers(tmp_path, redis_url, 2)
    for attempt in range(8):  # spread over names, so no per-user limit is reached
        worker = first if attempt % 2 else second
        assert _sign_in(worker, f"guess{attempt}", "wrong", "10.0.1.9").status_code == 401
    assert _sign_in(first, "max", PASSWORDS["max"], "10.0.1.9").status_code == 429
    assert _sign_in(second, "max", PASSWORDS["max"], "10.0.1.10").status_code == 302


def test_successful_sign_ins_do_not_count(tmp_path: Path, redis_url: str) -> None:
    [worker] = _workers(tmp_path, redis_url, 1)
    for _ in range(6):
        assert _sign_in(worker, "max", PASSWORDS["max"], "10.0.2.1").status_code == 302


def test_without_redis_each_worker_still_throttles(tmp_path: Path) -> None:
    """Redis unreachable: Flask-Limiter's in-memory fallback keeps a per-worker limit (logged)."""
    [worker] = _workers(tmp_path, f"redis://127.0.0.1:{_free_port()}/0", 1)
    for _ in range(3):
        assert _sign_in(worker, "ann", "wrong", "10.0.3.1").status_code == 401
    assert _sign_in(worker, "ann", PASSWORDS["ann"], "10.0.3.1").status_code == 429


def test_a_bad_limit_in_the_config_is_one_line_naming_it(tmp_path: Path) -> None:
    from engine.errors import SegmintError

    with pytest.raises(SegmintError) as error:
        make_settings(tmp_path, "sqlite://", '[dashboard]\nlogin_limits_per_user = "often"\n')
    assert "login_limits_per_user" in str(error.value) and "\n" not in str(error.value)
