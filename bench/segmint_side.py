"""Segmint's own ingest and run, and the pandas `to_sql` load they are compared with.

The Segmint stages call the real code (`engine.ingest.ingest_file`, `engine.pipeline.execute_run`)
against a SQLite file in the workdir; `ingest` starts from an empty, migrated database each time so
every repeat loads the whole file. `to-sql` is the notebook's way of putting the same raw frame into
SQLite: `pd.read_csv` (not timed, reported as a note) then `DataFrame.to_sql`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import StageContext


def _settings(ctx: StageContext) -> Any:
    from engine.settings import load_settings

    folder = ctx.workdir / "segmint"
    folder.mkdir(exist_ok=True)
    config = folder / "config.toml"
    if not config.exists():
        config.write_text("# benchmark settings: every default\n")
    url = f"sqlite:///{folder / 'segmint.db'}"
    return load_settings(config, environ={"SEGMINT_DATABASE_URL": url})


def ingest(ctx: StageContext) -> None:
    from engine.ingest import ingest_file
    from engine.store import get_engine, init_db

    settings = _settings(ctx)
    for leftover in (ctx.workdir / "segmint").glob("segmint.db*"):
        leftover.unlink()
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    preset = ctx.options.get("preset", "online-retail")
    customers = ctx.options.get("customers")
    with ctx.timed():
        summary = ingest_file(engine, settings, ctx.data, preset=preset,
                              customers=Path(customers) if customers else None)
    ctx.notes.update(lines_read=summary.lines_read, loaded=summary.loaded,
                     duplicates=summary.duplicates, rejected=summary.rejected)


class _StageTimings(logging.Handler):
    """Collects the pipeline's own "stage: 1.23s" debug lines, to show where a run spends time."""

    PATTERN = re.compile(r"^(\w+): (\d+\.\d+)s")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.match(record.getMessage())
        if match:
            self.seconds[match.group(1)] = float(match.group(2))


def run(ctx: StageContext) -> None:
    from engine.pipeline import execute_run
    from engine.store import get_engine

    settings = _settings(ctx)
    engine = get_engine(settings.database_url)
    timings = _StageTimings()
    pipeline_log = logging.getLogger("engine.pipeline")
    pipeline_log.addHandler(timings)
    pipeline_log.setLevel(logging.DEBUG)
    with ctx.timed():
        run_id = execute_run(engine, settings)
    ctx.notes.update(run_id=run_id, timings=timings.seconds)


def to_sql(ctx: StageContext) -> None:
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_csv(ctx.data, dtype={"InvoiceNo": str, "StockCode": str})
    ctx.notes["read_seconds"] = round(time.perf_counter() - started, 3)
    target = ctx.workdir / "to_sql.sqlite"
    target.unlink(missing_ok=True)
    with ctx.timed(), sqlite3.connect(target) as connection:
        df.to_sql("transactions", connection, if_exists="replace", index=False)
    ctx.notes["lines"] = len(df)


STAGES: dict[str, Callable[[StageContext], None]] = {"ingest": ingest, "run": run}
PANDAS_STAGES: dict[str, Callable[[StageContext], None]] = {"to-sql": to_sql}
