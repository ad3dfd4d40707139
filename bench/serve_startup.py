"""`segmint serve` start-up: seconds from the process start to the first answered GET /login, and
to the log's "dashboard cache warmed" line, with the server's cache folder emptied before each
start (a cold cache, as after a deploy).

    python -m bench.serve_startup --config /path/config.toml \\
        --database-url sqlite:////path/segmint.db --runs 3 [--src /path/to/checkout]

--src is the checkout whose code runs: `python -m segmint` imports from its working directory
first, so one venv measures any commit (the way bench/cli_startup.sh does). The database must
hold a published run for the warm-up to have work to do.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from engine.settings import load_settings

log = logging.getLogger("bench.serve_startup")
WARMED = "dashboard cache warmed"
LIMIT_SECONDS = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_start(*, python: str, src: Path, config: Path, database_url: str,
              workers: int) -> tuple[float, float | None]:
    """Seconds to the first 200 on /login and to the warm-up's end (None if never logged)."""
    settings = load_settings(config, environ={"SEGMINT_DATABASE_URL": database_url})
    shutil.rmtree(settings.path(settings.dashboard.cache_dir), ignore_errors=True)
    port = _free_port()
    env = dict(os.environ, SEGMINT_DATABASE_URL=database_url)
    env.pop("SEGMINT_SECRET_KEY", None)
    with tempfile.NamedTemporaryFile("w+", prefix="serve-", suffix=".log", delete=False) as out:
        log_path = Path(out.name)
    started = time.perf_counter()
    with log_path.open("w") as handle:
        process = subprocess.Popen(
            [python, "-m", "segmint", "--config", str(config), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers)],
            cwd=src, env=env, stdout=handle, stderr=subprocess.STDOUT)
    login: float | None = None
    warmed: float | None = None
    try:
        while time.perf_counter() - started < LIMIT_SECONDS:
            if process.poll() is not None:
                raise SystemExit(f"error: segmint serve exited: {log_path.read_text()[-2000:]}")
            if login is None:
                try:
                    response = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
                    if response.status_code == 200:
                        login = time.perf_counter() - started
                except requests.RequestException:
                    pass
            if warmed is None and WARMED in log_path.read_text():
                warmed = time.perf_counter() - started
            if login is not None and warmed is not None:
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_path.unlink()
    if login is None:
        raise SystemExit(f"error: /login did not answer within {LIMIT_SECONDS} s")
    return login, warmed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--src", type=Path, default=Path.cwd())
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logins, warms = [], []
    for run in range(1, args.runs + 1):
        login, warmed = one_start(python=args.python, src=args.src.resolve(),
                                  config=args.config.resolve(), database_url=args.database_url,
                                  workers=args.workers)
        logins.append(login)
        if warmed is not None:
            warms.append(warmed)
        log.info("%s run %d: /login answered at %.2f s, cache warmed at %s", args.label, run,
                 login, f"{warmed:.2f} s" if warmed is not None else "(not logged)")
    log.info("%s median of %d: /login %.2f s, cache warmed %s", args.label, args.runs,
             statistics.median(logins),
             f"{statistics.median(warms):.2f} s" if warms else "(not logged)")


if __name__ == "__main__":
    main()
