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


def cached(name: str, *parts: Any, compute: Callable[[], T]) -> T:
    """The value of compute() for (name, parts, data version), from the shared cache if there.

    One request computes a missing value while the others (any worker) wait for it, so ten
    clients opening the same cold page run its SQL once, not ten times at once.
    """
    key = cache_key(name, *parts)
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
        store.set(key, value)
    finally:
        store.delete(lock)
    return value
