"""`segmint demo`: sample data, schema, ingest, one pipeline run, a demo login, then the
scheduler and the dashboard as two child processes, stopped together on Ctrl-C or SIGTERM.

The children are real `segmint scheduler` and `segmint serve` processes (sys.executable -m
segmint), so the demo runs exactly what a deployment runs; the dashboard's workers never start a
scheduler.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click

from engine.errors import SegmintError
from engine.settings import Settings
from engine.store import describe, get_engine, init_db
from jobs.tasks import pipeline

log = logging.getLogger(__name__)

DEMO_USER = "demo"
DEMO_ROLE = "analyst"
PASSWORD_ENV = "SEGMINT_DEMO_PASSWORD"
STOP_TIMEOUT_SECONDS = 30.0


class DemoError(SegmintError):
    """A demo step failed; the message names the step."""


def _segmint(config_path: str | None, *args: str) -> list[str]:
    config = ["--config", str(Path(config_path).resolve())] if config_path else []
    return [sys.executable, "-m", "segmint", *config, *args]


def prepare_data(settings: Settings, *, customers: int) -> tuple[Path, Path]:
    """Demo files in var/demo-data beside the config, generated only when absent."""
    folder = settings.path("var/demo-data")
    transactions, customers_file = folder / "transactions.csv", folder / "customers.csv"
    if transactions.exists() and customers_file.exists():
        click.echo(f"demo data: {folder} (already there)")
        return transactions, customers_file
    from engine.demo import PastOffer, generate_demo_data

    # With a past offer pass of known effect, so the Offers page shows a measured uplift.
    result = generate_demo_data(folder, customers=customers, seed=42, past_offer=PastOffer())
    click.echo(f"demo data: {result.transactions_path} ({result.lines:,} lines), "
               f"{result.customers_path} ({result.customers:,} customers), "
               f"{result.offer_pass_path} (a past offer, true uplift {result.true_uplift:+.1f} "
               "points)")
    return Path(result.transactions_path), Path(result.customers_path)


def ensure_login(settings: Settings, *, config_path: str | None) -> str:
    """The demo account (analyst). Returns how to log in, for the banner."""
    from engine.store.users import find_user

    engine = get_engine(settings.database_url, settings.database.echo)
    password = os.environ.get(PASSWORD_ENV)
    if find_user(engine=engine, username=DEMO_USER) is not None and not password:
        return (f"user {DEMO_USER!r} (password shown when it was created; set {PASSWORD_ENV} "
                "to reset it)")
    password = password or secrets.token_urlsafe(9)
    # Through the CLI's own `users add`, so the dashboard's hashing is used without the demo
    # importing the dashboard package.
    done = subprocess.run(_segmint(config_path, "users", "add", DEMO_USER, "--role", DEMO_ROLE),
                          input=password + "\n", capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DemoError(f"creating the demo login failed: {reason}")
    return f"user {DEMO_USER!r}, password {password!r}"


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("demo child=%s did not stop in %ss; killing it", name,
                        STOP_TIMEOUT_SECONDS)
            child.kill()
            child.wait()


def run_demo(settings: Settings, *, config_path: str | None, port: int | None = None,
             interval: int = 60, customers: int = 2000) -> int:
    """Prepare everything, then supervise scheduler + dashboard until a signal; exit status."""
    engine = get_engine(settings.database_url, settings.database.echo)
    click.echo(f"database: {describe(settings.database_url)} at revision {init_db(engine=engine)}")
    transactions, customers_file = prepare_data(settings, customers=customers)
    from engine.ingest import ingest_file

    summary = ingest_file(engine, settings, transactions, customers=customers_file)
    click.echo(summary.summary_line())
    if summary.customers is not None:
        click.echo(summary.customers.summary_line())
    offer_pass = transactions.parent / "offer_pass.csv"
    if offer_pass.exists():
        from engine.offer_outcomes import record_offer_pass_file

        added, _known = record_offer_pass_file(engine, offer_pass)
        click.echo(f"past offer pass: {added:,} ledger rows recorded")
    outcome = pipeline(engine, settings, trigger="demo")
    if outcome.status == "failed":
        raise DemoError(f"the first pipeline run failed: {outcome.error}")
    click.echo(f"pipeline: {outcome.status}, published run {outcome.run_id or '(unchanged)'}")
    login = ensure_login(settings, config_path=config_path)

    host = settings.dashboard.host
    port = port or settings.dashboard.port
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        children["scheduler"] = subprocess.Popen(
            _segmint(config_path, "scheduler", "--interval", str(interval)))
        children["dashboard"] = subprocess.Popen(
            _segmint(config_path, "serve", "--host", host, "--port", str(port)))
        click.echo(f"dashboard: http://{host}:{port}/  login: {login}")
        click.echo(f"scheduler: pipeline every {interval}s; drop files into "
                   f"{settings.path(settings.scheduler.inbox_dir)}. Ctrl-C stops both.")
        while not stop_requested:
            ended = {name: child.returncode for name, child in children.items()
                     if child.poll() is not None}
            if ended:
                name, code = next(iter(ended.items()))
                click.echo(f"error: {name} exited with status {code}; stopping the demo",
                           err=True)
                return 1
            time.sleep(0.3)
        click.echo("stopping scheduler and dashboard ...")
        return 0
    finally:
        _stop(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
