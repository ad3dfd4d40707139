"""What pages and callbacks need from the running server: settings, the database, the cache.

Everything hangs off the Flask app (`current_app`), so pages never import the Dash app and no
state lives in module globals. Cached values are keyed by the data version (last loaded line and
last published run), so a new ingest or run shows up on the next visit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

T = TypeVar("T")


def settings() -> Settings:
    value: Settings = current_app.config[SETTINGS_KEY]
    return value


def engine() -> Engine:
    current = settings()
    return get_engine(current.database_url, current.database.echo)


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


def cached(name: str, *parts: Any, compute: Callable[[], T], keep: bool = False) -> T:
    """The value of compute() for (name, parts, data version), from the shared cache if there.

    One request computes a missing value while the others (any worker) wait for it, so ten
    clients opening the same cold page run its SQL once, not ten times at once.

    keep: this worker also keeps the latest value of `name` in memory and hands it out as it
    is, without reading the shared cache again. For the large frames every recomputed window
    reads (the run's rows, the sign-up dates): unpickling the run's rows cost 0.4 s per window
    at 185,000 customers. Kept values never expire from the shared cache either (their keys carry
    the data version). One value per name, so a new data version replaces it. Callers must not
    change a kept value in place.
    """
    key = cache_key(name, *parts)
    if not keep:
        return _shared(key, compute)
    kept: dict[str, tuple[str, Any]] = current_app.extensions.setdefault(KEPT_KEY, {})
    if name in kept and kept[name][0] == key:
        return kept[name][1]  # type: ignore[no-any-return]
    value = _shared(key, compute, timeout=0)
    kept[name] = (key, value)
    return value


def _shared(key: str, compute: Callable[[], T], timeout: int | None = None) -> T:
    """From the shared cache, or computed by one request (the others wait) and stored there
    for timeout seconds (None: [dashboard] cache_seconds; 0: until the data changes)."""
    store = cache()
    value = store.get(key)
    if value is not None:
        return value  # type: ignore[no-any-return]
    lock = lock_key(key)
    if not store.add(lock, True, timeout=LOCK_SECONDS):
        deadline = time.monotonic() + LOCK_SECONDS
        while value is None and time.monotonic() < deadline and store.get(lock) is not None:
            time.sleep(0.01)  # a cold value takes tens of ms: answer the waiters soon after
            value = store.get(key)
        if value is not None:
            return value  # type: ignore[no-any-return]
    try:
        value = compute()
        store.set(key, value, timeout=timeout)
    finally:
        store.delete(lock)
    return value
