"""Loading a transactions file (and optionally a customers file) into the store, all or nothing.

Reading, checking and normalising happen in memory first; only a file that can be loaded reaches
the database, in one transaction (engine.store.lines_write.write_files). Rows that cannot be used
are written to a rejects report with their line number and reason; they never fail the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from engine.dates import utc_now
from engine.ingest.customers import stage_customers
from engine.ingest.normalise import LineLimits
from engine.ingest.presets import Preset, choose_preset
from engine.ingest.readers import IngestError, RawFile, file_format, file_sha256, read_file
from engine.ingest.transactions import stage_lines
from engine.settings import Settings
from engine.store.lines_write import find_loaded_file, write_files
from engine.store.staged import StagedFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """What one file did. For a customers file, `flagged` rows were loaded but also reported
    (invalid phone, bad sign-up date, ...); `rejected` counts every reported row."""

    path: str
    lines_read: int
    loaded: int
    duplicates: int
    rejected: int
    rejects_path: str | None
    already_loaded: bool
    kind: str = "transactions"
    preset: str | None = None
    flagged: int = 0
    customers: IngestSummary | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary_line(self) -> str:
        if self.already_loaded:
            return f"{self.path}: already loaded (same sha256), nothing added"
        text = (f"{self.path}: read {self.lines_read:,}, loaded {self.loaded:,}, "
                f"duplicates skipped {self.duplicates:,}, rejected {self.rejected:,}")
        if self.flagged:
            text += f" ({self.flagged:,} of them kept with the bad field emptied or flagged)"
        if self.rejects_path:
            text += f"; rejects report: {self.rejects_path}"
        return text


def ingest_file(engine: Engine, settings: Settings, path: str | Path, *, preset: str | None = None,
                customers: str | Path | None = None, progress: bool = False,
                now: datetime | None = None) -> IngestSummary:
    """Load a transactions file (CSV, CSV.gz, XLSX, Parquet) and optionally a customers file.

    Idempotent: a file whose bytes were loaded before adds nothing, and a line already stored (by
    its hash) is counted as a duplicate. Both files are written in one transaction; IngestError
    (or StoreError) leaves the database exactly as it was. `now` (default: the system clock) is
    the load's time: lines dated more than a day after it are rejected lines.
    """
    transactions_path = Path(path)
    staged: list[StagedFile] = []
    reports: list[tuple[StagedFile, pd.DataFrame]] = []

    sha256 = file_sha256(transactions_path)
    file_format(transactions_path)
    earlier = find_loaded_file(engine=engine, sha256=sha256)
    chosen: Preset | None = None
    if earlier is None:
        raw = read_file(transactions_path, sha256)
        _require_lines(raw)
        chosen = choose_preset(raw, settings, preset)
        limits = LineLimits.for_load(settings, now or utc_now())
        lines_file, rejects = stage_lines(raw, chosen, limits)
        del raw  # the text frame is not needed while writing
        if lines_file.lines_read and lines_file.rejected == lines_file.lines_read:
            # Nothing usable at all is a wrong layout or format setting, not a few bad rows.
            first = rejects.iloc[0]
            raise IngestError(
                f"{transactions_path}: every one of {lines_file.lines_read:,} lines was rejected "
                f"(line {first['line']}: {first['reason']}); nothing loaded: check the preset "
                "and [ingest.mapping] timestamp_format")
        staged.append(lines_file)
        reports.append((lines_file, rejects))
    else:
        log.debug("%s: same bytes as %s loaded at %s; skipping", transactions_path, earlier.path,
                 earlier.loaded_at)

    customers_file: StagedFile | None = None
    customers_earlier = False
    flagged = 0
    if customers is not None:
        customers_sha256 = file_sha256(Path(customers))
        if find_loaded_file(engine=engine, sha256=customers_sha256) is None:
            raw_customers = read_file(Path(customers), customers_sha256)
            _require_lines(raw_customers)
            customers_file, customer_rejects, flagged = stage_customers(
                raw_customers, default_region=settings.notifications.default_region)
            staged.append(customers_file)
            reports.append((customers_file, customer_rejects))
        else:
            customers_earlier = True

    if staged:
        total = sum(len(item.lines) for item in staged if item.lines is not None)
        _write_with_progress(engine, staged, settings, total, progress)
        if any(item.lines is not None and item.loaded for item in staged):
            from engine.store import columnar

            columnar.sync_for(engine, settings)  # the dashboard's copy of the new lines
    report_paths = {id(item): _write_report(settings, item, rejects) for item, rejects in reports}

    customer_summary: IngestSummary | None = None
    if customers is not None:
        customer_summary = _summary(customers_file, str(customers), report_paths,
                                    already=customers_earlier, kind="customers", flagged=flagged)
    staged_lines = staged[0] if staged and staged[0].kind == "transactions" else None
    summary = _summary(staged_lines, str(transactions_path), report_paths,
                       already=earlier is not None, kind="transactions",
                       preset=chosen.name if chosen else None, customers=customer_summary)
    log.debug("%s", summary.summary_line())  # callers print or log it
    return summary


def _require_lines(raw: RawFile) -> None:
    """A file with a header and no line is refused like an empty one: loading it would record
    a source file that added nothing."""
    if raw.frame.empty:
        raise IngestError(f"{raw.path}: no lines after the header; nothing loaded")


def _summary(staged: StagedFile | None, path: str, report_paths: dict[int, str | None], *,
             already: bool, kind: str, preset: str | None = None, flagged: int = 0,
             customers: IngestSummary | None = None) -> IngestSummary:
    if staged is None:
        return IngestSummary(path=path, lines_read=0, loaded=0, duplicates=0, rejected=0,
                             rejects_path=None, already_loaded=already, kind=kind,
                             customers=customers)
    notes: tuple[str, ...] = ()
    if staged.lines is not None and staged.lines["stock_code"].isna().all() and len(staged.lines):
        notes = ("no stock codes: product figures, basket rules and recommendations are skipped",)
    return IngestSummary(
        path=path, lines_read=staged.lines_read, loaded=staged.loaded,
        duplicates=staged.duplicates + staged.duplicates_in_db, rejected=staged.rejected,
        rejects_path=report_paths.get(id(staged)), already_loaded=False, kind=kind,
        preset=preset, flagged=flagged, customers=customers, notes=notes,
    )


def _write_with_progress(engine: Engine, staged: list[StagedFile], settings: Settings, total: int,
                         progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total, unit="line", unit_scale=True, disable=not progress or total == 0,
              desc="loading", leave=False) as bar:
        write_files(engine=engine, files=staged, batch_size=settings.ingest.batch_size,
                    on_progress=bar.update,
                    non_product_codes=settings.ingest.non_product_codes)


def _write_report(settings: Settings, staged: StagedFile, rejects: pd.DataFrame) -> str | None:
    if rejects.empty:
        return None
    folder = settings.path(settings.ingest.rejects_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{Path(staged.path).name}.{staged.sha256[:12]}.rejects.csv"
    rejects.to_csv(target, index=False)
    return str(target)
