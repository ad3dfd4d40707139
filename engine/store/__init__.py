"""The store: every database read and write of Segmint goes through this package.

One module per subject owns its SQL (SQLAlchemy Core over the table handles of tables.py):
db.py (engines, migrations, errors), tables.py (table handles), runs.py (runs and the published
run), results.py (a run's results, transitions), sales.py (sales KPIs and products),
customers.py (the customer look-up, consent and opt-outs), offers.py (the offer ledger as the
sending pass writes it), offer_results.py (the ledger's summary and outcomes reads), jobs.py
(job history, fresh data), lines_write.py / lines_read.py (ingest's writes, the lines frame),
staged.py and sqlite_staging.py (what both stand on for the SQLite bulk load), users.py,
locks.py, scratch.py.
"""

from engine.store.db import (
    StoreError,
    check_connection,
    describe,
    get_engine,
    init_db,
    require_schema,
)

__all__ = [
    "StoreError",
    "check_connection",
    "describe",
    "get_engine",
    "init_db",
    "require_schema",
]
