"""`segmint serve`: the dashboard behind gunicorn (a real WSGI server, several workers).

The session key is settled in the master before the workers fork, so every worker signs and
checks cookies with the same key: SEGMINT_SECRET_KEY when set, else one random key per start.
Each worker builds its own app (no preload), so no database connection crosses a fork.
"""

from __future__ import annotations

import logging
import multiprocessing
import secrets
import time
from typing import Any

from gunicorn.app.base import BaseApplication

from engine.settings import Settings

log = logging.getLogger(__name__)
WARM_UP_SECONDS = 300


class DashboardServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running create_server(settings) in each worker."""

    def __init__(self, settings: Settings, *, host: str, port: int, secret_key: str,
                 workers: int | None = None) -> None:
        self.settings = settings
        self.secret_key = secret_key
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers or settings.dashboard.workers,
            "worker_class": "gthread",
            "threads": 4,
            # A recomputed date window can take a few seconds on the full data set.
            "timeout": 120,
            "graceful_timeout": 10,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "segmint-dashboard",
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from dashboard.app import create_server

        return create_server(self.settings, secret_key=self.secret_key)


def session_key(settings: Settings) -> str:
    key = settings.secrets.segmint_secret_key
    if key:
        return key
    log.warning("SEGMINT_SECRET_KEY is not set: using a random session key for this start "
                "(shared by the workers); sessions end when the dashboard restarts")
    return secrets.token_urlsafe(32)


def warm_cache(settings: Settings) -> None:
    """Fill the shared cache before the workers start: a child process builds the app and every
    page's default view (as a manager and as an analyst), so the first visitors after a start
    do not wait for the SQL over every transaction line. The master itself never builds the
    app or opens a connection, so nothing crosses the workers' fork."""
    started = time.perf_counter()
    child = multiprocessing.get_context("fork").Process(target=_warm_pages, args=(settings,),
                                                        name="segmint-dashboard-warm-up")
    child.start()
    child.join(timeout=WARM_UP_SECONDS)
    if child.is_alive():
        child.terminate()
        child.join()
        log.warning("dashboard cache warm-up took more than %ds; stopped", WARM_UP_SECONDS)
    elif child.exitcode:
        log.warning("dashboard cache warm-up failed (exit status %s); pages compute on first "
                    "visit", child.exitcode)
    else:
        log.info("dashboard cache warmed in %.1fs", time.perf_counter() - started)


def _warm_pages(settings: Settings) -> None:
    import dash
    from flask import session

    from dashboard.app import create_app

    app = create_app(settings, secret_key="warm-up only")
    for role in ("manager", "analyst"):
        for page in dash.page_registry.values():
            with app.server.test_request_context(page["path"]):
                session["user"] = "(warm-up)"
                session["role"] = role
                page["layout"]()


def preload_modules() -> None:
    """Import in the master what a custom date window needs (pandas, the engine's RFM, classes and
    clustering, so scikit-learn) and plotly's modules for each trace type: the forked workers
    inherit the modules, so an analyst's first window no longer waits seconds for the imports
    in each worker, nor the first figure drawn in a callback. Imports only: no app, no database
    connection, nothing that must not cross a fork."""
    started = time.perf_counter()
    import engine.window  # noqa: F401
    from dashboard.figures import import_trace_modules

    import_trace_modules()

    log.info("dashboard modules imported in %.1fs", time.perf_counter() - started)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          workers: int | None = None) -> None:
    """Run gunicorn in the foreground until it is stopped (SIGINT / SIGTERM)."""
    host = host or settings.dashboard.host
    port = port or settings.dashboard.port
    key = session_key(settings)
    preload_modules()
    warm_cache(settings)
    log.info("dashboard on http://%s:%d (%d workers)", host, port,
             workers or settings.dashboard.workers)
    DashboardServer(settings, host=host, port=port, secret_key=key, workers=workers).run()
