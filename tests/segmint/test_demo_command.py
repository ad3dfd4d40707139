"""`segmint demo`: one command brings up data, a run, a login, the scheduler and the dashboard as
two child processes, and SIGTERM stops all of it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from engine.store import get_engine
from tests.conftest import form_token
from tests.jobs.conftest import history, wait_for

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_mentioning(text: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in command:
                found[int(entry.name)] = command
    return found


def test_demo_runs_scheduler_and_dashboard_and_stops_both(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[clustering]\nk = 3\n")
    port = free_port()
    out = tmp_path / "demo.out"
    env = {key: value for key, value in os.environ.items() if key != "SEGMINT_DATABASE_URL"}
    env["SEGMINT_DEMO_PASSWORD"] = "demo-secret-42"
    with out.open("wb") as handle:
        demo = subprocess.Popen(
            [sys.executable, "-m", "segmint", "--config", str(config), "demo", "--customers",
             "120", "--port", str(port), "--interval", "3"],
            cwd=tmp_path, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "dashboard: http://" in out.read_text(), what="the demo banner",
                 timeout=120, logs=[out])
        text = out.read_text()
        assert "login: user 'demo', password 'demo-secret-42'" in text
        assert (tmp_path / "var" / "demo-data" / "transactions.csv").exists()

        session = requests.Session()
        wait_for(lambda: _up(session, port), what="the dashboard", logs=[out])
        token = form_token(session.get(f"http://127.0.0.1:{port}/login", timeout=60).text)
        login = session.post(f"http://127.0.0.1:{port}/login", allow_redirects=False,
                             data={"username": "demo", "password": "demo-secret-42",
                                   "csrf_token": token}, timeout=60)
        assert login.status_code in (302, 303) and session.cookies

        children = processes_mentioning(str(config))
        children.pop(demo.pid, None)
        scheduler_pids = {pid for pid, cmd in children.items() if " scheduler " in cmd}
        assert len(scheduler_pids) == 1
        assert any(" serve " in cmd for cmd in children.values())
        engine = get_engine(f"sqlite:///{tmp_path / 'var' / 'segmint.db'}")
        wait_for(lambda: len([r for r in history(engine, "pipeline") if r.finished_at]) >= 2,
                 what="a scheduler tick after the demo's own run", logs=[out])
        assert {r.details["pid"] for r in history(engine)} <= {demo.pid, *scheduler_pids}, \
            "only the demo's first run and the scheduler process run jobs (never the web workers)"
    finally:
        demo.send_signal(signal.SIGTERM)
        status = demo.wait(timeout=60)
    assert status == 0, out.read_text()[-2000:]
    assert processes_mentioning(str(config)) == {}, "both children stopped with the demo"


def _up(session: requests.Session, port: int) -> bool:
    try:
        return session.get(f"http://127.0.0.1:{port}/login", timeout=30).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False
