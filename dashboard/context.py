"""What pages and callbacks need from the running server: settings, the database, the cache.

Everything hangs off the Flask app (`current_app`), so pages never import the Dash app and no
state lives in module globals. Cached values are keyed by the data version (last loaded line,
number of loaded files, last published run), so a new ingest or run shows up on the next visit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from flask import current_app, g
from flask_caching import Cache
from sqlalchemy import Engine

from engine.settings import Settings
from engine.store import get_engine, sales

SETTINGS_KEY = "SEGMINT_SETTINGS"
# Bump when a cached frame changes shape, so a shared cache directory never serves old frames.
CACHE_FORMAT = "7"
# Longest a request waits for another one computing the same value before computing it too.
LOCK_SECONDS = 60
CACHE_KEY = "segmint_cache"
KEPT_KEY = "segmint_kept"
WRITER_KEY = "segmint_cache_writer"
TURN_KEY = "segmint_compute_turn"

T = TypeVar("T")
log = logging.getLogger(__name__)


def settings() -> Settings:
    value: Settings = current_app.config[SETTINGS_KEY]
    return value


def engine() -> Engine:
    current = settings()
    return get_engine(current.database_url, current.database.echo)


def install_cache(server: Any, store: Cache) -> None:
    """The shared cache and this worker's own state around it: the kept values, the turn to
    compute (one cold value at a time) and the thread that writes computed values."""
    server.extensions[CACHE_KEY] = store
    server.extensions[KEPT_KEY] = {}
    server.extensions[TURN_KEY] = threading.RLock()
    server.extensions[WRITER_KEY] = ThreadPoolExecutor(max_workers=1,
                                                       thread_name_prefix="segmint-cache")


def cache() -> Cache:
    value: Cache = current_app.extensions[CACHE_KEY]
    return value


def data_version() -> str:
    """Once per request: the version every cache key carries."""
    if "segmint_data_version" not in g:
        g.segmint_data_version = sales.data_version(engine=engine())
    version: str = g.segmint_data_version
    return version


def cache_key(name: str, *parts: Any) -> str:
    """The shared cache's key of a value: its name and parts, at the current data version."""
    return "|".join([CACHE_FORMAT, name, data_version(), *(repr(part) for part in parts)])


def lock_key(key: str) -> str:
    """The entry a request holds while it computes the value of key."""
    return key + "|computing"


def cached(name: str, *parts: Any, compute: Callable[[], T], keep: bool = False,
           lasting: bool = False) -> T:
    """The value of compute() for (name, parts, data version), from the shared cache if there.

    One request computes a missing value while the others (any worker) wait for it, so ten
    clients opening the same cold page run its SQL once, not ten times at once.

    keep: this worker also keeps the latest value of `name` in memory and hands it out as it
    is, without reading the shared cache again. For the large frames every recomputed window
    reads (the run's rows, the sign-up dates): unpickling the run's rows cost 0.4 s per window
    at 185,000 customers. Kept values never expire from the shared cache either (their keys carry
    the data version). One value per name, so a new data version replaces it. Callers must not
    change a kept value in place.

    lasting: the shared cache keeps the value until the data changes instead of [dashboard]
    cache_seconds. For what depends on a run and the lines only (the key's data version) and is
    bounded in number, as the default views' figures: expiring, they cost the first visitor
    after five idle minutes their whole computation again (Segments' KPIs and transitions, 3.4 s
    at 10 M lines). Not for a date window's frames: those are many and large, and expire.
    """
    key = cache_key(name, *parts)
    seen = _request_values()
    if key in seen:
        return seen[key]  # type: ignore[no-any-return]
    if not keep:
        value = _shared(key, compute, timeout=0 if lasting else None)
    else:
        kept: dict[str, tuple[str, Any]] = current_app.extensions[KEPT_KEY]
        if name in kept and kept[name][0] == key:
            value = kept[name][1]
        else:
            value = _shared(key, compute, timeout=0)
            kept[name] = (key, value)
    seen[key] = value
    return value


def _request_values() -> dict[str, Any]:
    """The values this request has had from `cached`, by key: a page asking twice for one
    (Products reads the window's product figures for two charts) gets it once. Without this the
    second ask read back from the shared cache what the first had just computed (the window's
    customer x product pairs: 50 MB, 0.07 s to unpickle)."""
    if "segmint_values" not in g:
        g.segmint_values = {}
    values: dict[str, Any] = g.segmint_values
    return values


def _shared(key: str, compute: Callable[[], T], timeout: int | None = None) -> T:
    """From the shared cache, or computed by one request (the others wait) and stored there
    for timeout seconds (None: [dashboard] cache_seconds; 0: until the data changes)."""
    store = cache()
    value = store.get(key)
    if value is not None:
        return value  # type: ignore[no-any-return]
    lock = lock_key(key)
    with _computing():
        value = store.get(key)  # written while this request waited for its turn
        if value is not None:
            return value  # type: ignore[no-any-return]
        if store.add(lock, True, timeout=LOCK_SECONDS):
            return _compute(store, key, compute, timeout, lock)
    # Another request computes it: wait for the value without holding this worker's turn.
    deadline = time.monotonic() + LOCK_SECONDS
    while value is None and time.monotonic() < deadline and store.get(lock) is not None:
        time.sleep(0.01)  # a cold value takes tens of ms: answer the waiters soon after
        value = store.get(key)
    if value is not None:
        return value  # type: ignore[no-any-return]
    with _computing():  # that request failed or took too long: compute it here too
        return _compute(store, key, compute, timeout, None)


def _computing() -> threading.RLock:
    """This worker's turn to compute: one missing value at a time per worker (a request that
    computes one while computing another, as a page computing its frames, keeps its turn).
    A worker's threads share one interpreter lock, so computing two at once gains no time, and
    two windows' frames at once took a worker past 1 GiB at 10 M lines."""
    turn: threading.RLock = current_app.extensions[TURN_KEY]
    return turn


def _compute(store: Cache, key: str, compute: Callable[[], T], timeout: int | None,
             lock: str | None) -> T:
    """compute(), then written to the shared cache after the answer; lock (held by this
    request, None if none) is released once the value is written, or at once on error."""
    try:
        value = compute()
    except BaseException:
        if lock is not None:
            store.delete(lock)
        raise
    # Written to the shared cache after the answer, by the worker's writer thread: pickling a
    # window's frames to disk costs 0.1-0.2 s at 10 M lines (50 MB for its customer-product
    # pairs), which the page's first visitor no longer waits for. The lock stays until the
    # value is there, so the requests waiting for it still find it.
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _writer().submit(_write, app, store, key, value, timeout, lock)
    return value


def _write(app: Any, store: Cache, key: str, value: Any, timeout: int | None,
           lock: str | None) -> None:
    with app.app_context():
        try:
            store.set(key, value, timeout=timeout)
        except Exception:  # noqa: BLE001 - a cache that cannot be written only costs time
            log.exception("dashboard cache: %s not written", key.split("|")[1])
        finally:
            if lock is not None:
                store.delete(lock)


def _writer() -> ThreadPoolExecutor:
    """This worker's one cache-writing thread (values are written in the order computed)."""
    writer: ThreadPoolExecutor = current_app.extensions[WRITER_KEY]
    return writer


def flush() -> None:
    """Wait until every value computed so far is in the shared cache (the warm-up's last
    step, before its process exits)."""
    _writer().submit(lambda: None).result()
