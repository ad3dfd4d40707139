"""Named cross-process locks, so two schedulers (or a scheduler and `segmint run`) never run
the same job at once.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated
connection for the duration of the block; it disappears with the connection, so a killed
process never leaves it behind. The key is derived from the schema and the lock name, so two
Segmint installations in different schemas of one database do not block each other.

SQLite: a row in `job_lock`, inserted in its own transaction. A row is stale, and is taken over
with a compare-and-swap update, when it has expired (`scheduler.lock_ttl_seconds`) or when its
holder is a process on this host that no longer exists (a scheduler killed with SIGKILL).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from engine.dates import as_utc, utc_now
from engine.errors import SegmintError
from engine.store.tables import LOCKS

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 6 * 3600


class LockBusy(SegmintError):
    """Another process holds the named lock; the message names the lock (and holder if known)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: host and process id, plus a free label ('scheduler', 'cli run')."""

    host: str
    pid: int
    label: str

    @classmethod
    def current(cls, label: str) -> Holder:
        return cls(host=socket.gethostname(), pid=os.getpid(), label=label)

    def encode(self) -> str:
        return f"{self.host}:{self.pid}:{self.label}"[:128]

    @classmethod
    def decode(cls, value: str) -> Holder | None:
        host, _, rest = value.partition(":")
        pid, _, label = rest.partition(":")
        return cls(host=host, pid=int(pid), label=label) if pid.isdigit() else None


def process_alive(pid: int) -> bool:
    """True when a process with this id exists on this host (a zombie still counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_is_dead(encoded: str) -> bool:
    """A holder recorded by a process on this host that has since exited."""
    holder = Holder.decode(encoded)
    return (holder is not None and holder.host == socket.gethostname()
            and not process_alive(holder.pid))


@contextmanager
def job_lock(*, engine: Engine, name: str, holder: str,
             ttl_seconds: int = DEFAULT_TTL_SECONDS) -> Iterator[None]:
    """Hold the lock NAME for the block; raise LockBusy at once if another process holds it."""
    me = Holder.current(holder)
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name, me):
            yield
        return
    _acquire_row(engine, name, me, ttl_seconds)
    try:
        yield
    finally:
        _release_row(engine, name, me)


def _advisory_key(connection: Connection, name: str) -> int:
    schema = connection.execute(text("SELECT current_schema()")).scalar() or ""
    digest = hashlib.sha256(f"segmint:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _advisory_lock(engine: Engine, name: str, me: Holder) -> Iterator[None]:
    # AUTOCOMMIT: the lock belongs to the session, so the connection need not sit idle inside a
    # transaction for the hours a run may take.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        key = _advisory_key(connection, name)
        acquired = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                      {"key": key}).scalar()
        if not acquired:
            raise LockBusy(f"job lock {name!r} is held by another process (PostgreSQL advisory "
                           f"lock {key}); try again when it has finished")
        log.debug("lock=%s action=acquired holder=%s", name, me.encode())
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            log.debug("lock=%s action=released holder=%s", name, me.encode())


def _acquire_row(engine: Engine, name: str, me: Holder, ttl_seconds: int) -> None:
    now = utc_now()
    values = {"holder": me.encode(), "acquired_at": now,
              "expires_at": now + timedelta(seconds=ttl_seconds)}
    try:
        with engine.begin() as connection:
            connection.execute(insert(LOCKS).values(name=name, **values))
        log.debug("lock=%s action=acquired holder=%s", name, me.encode())
        return
    except IntegrityError:
        pass
    with engine.begin() as connection:
        row = connection.execute(
            select(LOCKS.c.holder, LOCKS.c.acquired_at, LOCKS.c.expires_at)
            .where(LOCKS.c.name == name)).one_or_none()
    if row is None:  # released between our insert and our read: try once more from scratch
        _acquire_row_once_more(engine, name, values, me)
        return
    expired = as_utc(row.expires_at) <= now
    dead = holder_is_dead(row.holder)
    if not (expired or dead):
        raise LockBusy(f"job lock {name!r} is held by {row.holder} since "
                       f"{row.acquired_at:%Y-%m-%d %H:%M:%S} UTC; try again when it has finished")
    # Compare-and-swap: only one of several processes taking over the same stale row wins.
    with engine.begin() as connection:
        taken = connection.execute(
            update(LOCKS)
            .where(LOCKS.c.name == name, LOCKS.c.holder == row.holder,
                   LOCKS.c.acquired_at == row.acquired_at)
            .values(**values)).rowcount
    if taken != 1:
        raise LockBusy(f"job lock {name!r} was just taken over by another process")
    log.warning("lock=%s action=taken_over stale_holder=%s reason=%s holder=%s", name, row.holder,
                "expired" if expired else "holder_dead", me.encode())


def _acquire_row_once_more(engine: Engine, name: str, values: dict[str, object],
                           me: Holder) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(insert(LOCKS).values(name=name, **values))
    except IntegrityError:
        raise LockBusy(f"job lock {name!r} is held by another process") from None
    log.debug("lock=%s action=acquired holder=%s", name, me.encode())


def _release_row(engine: Engine, name: str, me: Holder) -> None:
    with engine.begin() as connection:
        connection.execute(delete(LOCKS).where(LOCKS.c.name == name,
                                                    LOCKS.c.holder == me.encode()))
    log.debug("lock=%s action=released holder=%s", name, me.encode())
