"""`segmint serve`: the dashboard behind gunicorn (a real WSGI server, several workers).

The session key is settled in the master before the workers fork, so every worker signs and
checks cookies with the same key: SEGMINT_SECRET_KEY when set, else one random key per start.
Each worker builds its own app (no preload), so no database connection crosses a fork.

The server listens first and warms its cache after: once gunicorn has bound its socket (its
when_ready hook), the master forks one warmer process, which has a child render every page's
default view into the shared cache while the workers already answer, and does so again whenever
the data version changes (a load or a new run while the server runs: the nightly job's new run
is warm before the first manager opens it). A visitor never waits for the warm-up of another
page: each page asks the cache only for its own values, and a value being computed (by the
warm-up or by another visitor) is waited for, not computed twice (dashboard.context).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import time
from typing import Any

from gunicorn.app.base import BaseApplication

from engine.roles import ROLES
from engine.settings import Settings

log = logging.getLogger(__name__)
WARM_UP_SECONDS = 300


class DashboardServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running create_server(settings) in each worker."""

    def __init__(self, settings: Settings, *, host: str, port: int, secret_key: str,
                 workers: int | None = None) -> None:
        self.settings = settings
        self.secret_key = secret_key
        self.warm_up_pid = 0
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
            "when_ready": self.when_ready,
            "on_exit": self.on_exit,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from dashboard.app import create_server

        bound_memory()
        return create_server(self.settings, secret_key=self.secret_key)

    def when_ready(self, arbiter: Any) -> None:
        """gunicorn calls this in the master once the socket listens, before the workers fork."""
        self.warm_up_pid = start_warm_up(self.settings, arbiter)

    def on_exit(self, _arbiter: Any) -> None:
        stop_warm_up(self.warm_up_pid)


MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter


def bound_memory() -> None:
    """Each worker (before its app is built): glibc's malloc keeps at most MALLOC_ARENAS
    arenas, and Arrow allocates from that malloc instead of its own mimalloc pool.

    A worker's 4 threads each got an arena of their own (glibc's default is 8 per core), and
    mimalloc kept the pages of a window's Arrow tables after they were freed, so a worker's
    resident memory grew with every thread that once held a window's frames: 1,403 MiB with
    10 clients at 10 M lines, 970 MiB with this (docs/benchmarks.md). Not glibc (musl): the
    arena limit is skipped."""
    import ctypes

    import pyarrow as pa

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    pa.set_memory_pool(pa.system_memory_pool())


def session_key(settings: Settings) -> str:
    key = settings.secrets.segmint_secret_key
    if key:
        return key
    log.warning("SEGMINT_SECRET_KEY is not set: using a random session key for this start "
                "(shared by the workers); sessions end when the dashboard restarts")
    return secrets.token_urlsafe(32)


def start_warm_up(settings: Settings, arbiter: Any) -> int:
    """Fork the warmer (from gunicorn's master, which never built the app nor opened a
    connection, so nothing crosses the fork) and return its pid. It leads a process group of its
    own (its warm-ups included), which stop_warm_up ends, and exits 0 whatever happens
    (gunicorn reaps it like a worker and halts on a worker's boot-error status)."""
    pid = os.fork()
    if pid:
        with contextlib.suppress(OSError):  # as the warmer does: whichever runs first
            os.setpgid(pid, pid)
        return pid
    try:
        _leave_the_master(arbiter)
        _keep_warm(settings, master=os.getppid())
    except BaseException:  # noqa: BLE001 - the child must exit here, never return into gunicorn
        log.exception("dashboard cache warmer failed; pages compute on first visit")
    finally:
        logging.shutdown()
        os._exit(0)


def _leave_the_master(arbiter: Any) -> None:
    """In the warmer: gunicorn's signal handlers, listening sockets and wake-up pipe stay with
    the master."""
    for name in ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN",
                 "SIGTTOU", "SIGWINCH", "SIGCHLD"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    for fd in [listener.fileno() for listener in arbiter.LISTENERS] + list(arbiter.PIPE):
        with contextlib.suppress(OSError):
            os.close(fd)
    os.setpgid(0, 0)


def _keep_warm(settings: Settings, *, master: int) -> None:
    """Warm the default views now, then again each time the data version changes, looked at
    every [dashboard] rewarm_seconds (0: once). Ends when the master is gone."""
    log.info("dashboard cache warmer started (pid %d)", os.getpid())
    warmed = _warm_up(settings)
    every = settings.dashboard.rewarm_seconds
    while every and os.getppid() == master:
        time.sleep(every)
        current = _data_version(settings)
        if current is not None and current != warmed:
            log.info("new data (version %s, was %s): warming the dashboard cache again",
                     current, warmed)
            warmed = _warm_up(settings)


def _warm_up(settings: Settings) -> str | None:
    """One warm-up in a child process (its frames' memory goes when it exits; it ends by itself
    after WARM_UP_SECONDS, SIGALRM's default); the data version it started from."""
    version = _data_version(settings)
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return version
    try:
        signal.alarm(WARM_UP_SECONDS)
        log.info("dashboard cache warm-up started (pid %d)", os.getpid())
        started = time.perf_counter()
        _warm_pages(settings)
        log.info("dashboard cache warmed in %.1fs", time.perf_counter() - started)
    except BaseException:  # noqa: BLE001 - the child must exit here
        log.exception("dashboard cache warm-up failed; pages compute on first visit")
    finally:
        logging.shutdown()
        os._exit(0)


def _data_version(settings: Settings) -> str | None:
    """The store's data version (None, with a warning, while the database cannot be reached);
    the engine's connections are closed again, so none is inherited by the next warm-up."""
    from engine.store import get_engine, sales

    engine = get_engine(settings.database_url)
    try:
        return sales.data_version(engine=engine)
    except Exception as exc:  # noqa: BLE001 - the next look may succeed
        log.warning("dashboard warmer: the database cannot be read (%s)",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    finally:
        engine.dispose()


def stop_warm_up(pid: int) -> None:
    """When the server stops: end the warmer and a warm-up still running (gunicorn may have
    reaped the warmer)."""
    if not pid:
        return
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return  # it had ended: the group is empty, its number may be another's by now
        os.killpg(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):  # ended and reaped by gunicorn already
        return
    log.info("dashboard cache warmer stopped with the server")


def _warm_pages(settings: Settings) -> None:
    import dash
    from flask import session

    from dashboard import context, frames
    from dashboard.app import create_app
    from engine.store import columnar, get_engine

    # First the columnar copy of what was loaded since it was last written (a load writes its
    # own; this catches a store loaded by an older version or a copy removed by hand).
    columnar.sync_for(get_engine(settings.database_url), settings)
    app = create_app(settings, secret_key="warm-up only")
    for role in ROLES:
        for page in dash.page_registry.values():
            with app.server.test_request_context(page["path"]):
                session["user"] = "(warm-up)"
                session["role"] = role
                page["layout"]()
    with app.server.test_request_context("/"):
        # No default view reads these; every analyst's first window does.
        frames.signups()
        frames.new_customers()
        context.flush()


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
    log.info("dashboard on http://%s:%d (%d workers)", host, port,
             workers or settings.dashboard.workers)
    DashboardServer(settings, host=host, port=port, secret_key=key, workers=workers).run()
