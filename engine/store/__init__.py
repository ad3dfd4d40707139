"""The store: every database read and write of Segmint goes through this package.

db.py owns engines, sessions and migrations; one module per area holds its SQL
(lines.py for ingest, runs.py for segmentation results, offers.py, jobs.py, users.py,
aggregates.py for the dashboard).
"""

from engine.store.db import (
    StoreError,
    check_connection,
    describe,
    get_engine,
    init_db,
    require_schema,
    session_scope,
)

__all__ = [
    "StoreError",
    "check_connection",
    "describe",
    "get_engine",
    "init_db",
    "require_schema",
    "session_scope",
]
