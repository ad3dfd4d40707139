"""`segmint serve`: the dashboard behind gunicorn (a real WSGI server, several workers).

The session key is settled in the master before the workers fork, so every worker signs and
checks cookies with the same key: SEGMINT_SECRET_KEY when set, else one random key per start.
Each worker builds its own app (no preload), so no database connection crosses a fork.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from gunicorn.app.base import BaseApplication

from engine.settings import Settings

log = logging.getLogger(__name__)


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


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          workers: int | None = None) -> None:
    """Run gunicorn in the foreground until it is stopped (SIGINT / SIGTERM)."""
    host = host or settings.dashboard.host
    port = port or settings.dashboard.port
    key = session_key(settings)
    log.info("dashboard on http://%s:%d (%d workers)", host, port,
             workers or settings.dashboard.workers)
    DashboardServer(settings, host=host, port=port, secret_key=key, workers=workers).run()
