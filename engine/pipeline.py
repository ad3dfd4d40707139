"""One segmentation run: the pure `segment` (frames in, RunResult out) and `execute_run`, which
loads the lines, records the run and publishes its results atomically.

Window and dates: the window is [since, until], whole days, both inclusive. ``as_of`` defaults to
the day after the last line in the window. When ``as_of`` is given without ``until``, lines on or
after ``as_of`` are left out (they lie in the future of the analysis); ``until`` equal to
``as_of`` keeps that day's lines (an observation period that ends on ``as_of``, as the CLV
papers count it: ``run --until 1997-09-30 --as-of 1997-09-30``); ``until`` after ``as_of`` is
refused. Lines before ``since`` are kept as history: they give first purchases
(the default sign-up date) and earlier spend for the classes, and "already bought" for the
recommendations, but not RFM, clusters or basket rules.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from sqlalchemy import Engine

from engine.backend import LineWork, PandasLines
from engine.classes import CLASSES, classify
from engine.clustering import cluster_customers
from engine.dates import last_day, window_end
from engine.errors import SegmintError, one_line
from engine.profiles import cluster_profiles
from engine.rfm import REQUIRED_LINE_COLUMNS, require_columns, scored_segments
from engine.sales_figures import SalesFigures
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.clv import ClvResult

log = logging.getLogger(__name__)

# The line columns `segment` reads (RFM, classes, baskets, recommendations, the sales figures);
# a run loads only these (unit_price and country are the dashboard's).
RUN_LINE_COLUMNS = (*REQUIRED_LINE_COLUMNS, "description", "quantity")

SEGMENT_RESULT_COLUMNS = [
    "customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
    "rfm_code", "rfm_score", "rfm_segment", "rfm_grid_segment", "cluster", "value_tier",
    "customer_class",
]


class RunError(SegmintError):
    """A segmentation run failed; the run is recorded as failed and the last good run stays."""


@dataclass(frozen=True)
class RunResult:
    as_of: date
    since: date | None
    until: date | None
    k: int
    k_mode: str
    seed: int
    n_lines: int
    segments: pd.DataFrame
    profiles: pd.DataFrame
    rules: pd.DataFrame | None
    recommendations: pd.DataFrame | None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    clv: ClvResult | None = None  # None when [clv] enabled = false
    sales: SalesFigures | None = None  # the window's KPIs, monthly and product figures

    @property
    def n_customers(self) -> int:
        return len(self.segments)


class _Stages:
    """Times each stage and logs it, so a run's progress and cost show in the log."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        log.log(self.level, "%s: %.2fs", name, self.seconds[name])


def _keep(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    return frame if bool(mask.all()) else frame[mask]


def history_end(*, as_of: date | None, since: date | None, until: date | None) -> date | None:
    """Where a run's history stops (exclusive; None: no bound): until's end (engine.dates'
    window rule), else as_of. RunError when the bounds disagree. Both backends check here."""
    if as_of is not None and until is not None and until > as_of:
        raise RunError(f"--until {until} must not be after --as-of {as_of}")
    if since is not None and until is not None and since > until:
        raise RunError(f"--since {since} is after --until {until}")
    return window_end(until) if until is not None else as_of


def empty_window(*, since: date | None, until: date | None, as_of: date | None) -> RunError:
    """The error of a run whose window holds no line."""
    return RunError(f"no transaction lines in the window {since or 'start'} .. "
                    f"{last_day(until, as_of) or 'end'}")


def window_lines(lines: pd.DataFrame, *, as_of: date | None, since: date | None,
                 until: date | None) -> tuple[pd.DataFrame, pd.DataFrame, date | None]:
    """(history up to the window's end, the window's lines, as_of); as_of None only when the
    window is empty. The dashboard's recomputed windows use it too, so they match a run."""
    end = history_end(as_of=as_of, since=since, until=until)
    # A filter that keeps every line returns the frame itself, not a copy of it (the store
    # already loads the lines up to the window's end, and the frame is the run's largest object).
    history = lines if end is None else _keep(lines, lines["ts"] < pd.Timestamp(end))
    window = history if since is None else _keep(history, history["ts"] >= pd.Timestamp(since))
    if as_of is None and not window.empty:
        as_of = window["ts"].max().date() + timedelta(days=1)
    return history, window, as_of


def segment(lines: pd.DataFrame, customers: pd.DataFrame | None, settings: Settings, *,
            as_of: date | None = None, since: date | None = None, until: date | None = None,
            k: int | Literal["auto"] | None = None, seed: int | None = None,
            progress: bool = False) -> RunResult:
    """RFM, scores, named segments, clusters, tiers, classes, profiles, rules, recommendations,
    the sales figures."""
    work = pandas_lines(lines, settings, as_of=as_of, since=since, until=until)
    return segment_lines(work, customers, settings, since=since, until=until, k=k, seed=seed,
                         progress=progress)


def pandas_lines(lines: pd.DataFrame, settings: Settings, *, as_of: date | None,
                 since: date | None, until: date | None) -> PandasLines:
    """The run's window of a lines frame on the pandas backend; RunError when it is empty."""
    require_columns(lines, REQUIRED_LINE_COLUMNS, "lines frame")
    history, window, as_of = window_lines(lines, as_of=as_of, since=since, until=until)
    if window.empty or as_of is None:
        raise empty_window(since=since, until=until, as_of=as_of)
    return PandasLines(history=history, window=window, as_of=as_of,
                       non_product_codes=list(settings.ingest.non_product_codes),
                       has_products=bool(lines["stock_code"].notna().any()))


def segment_lines(work: LineWork, customers: pd.DataFrame | None, settings: Settings, *,
                  since: date | None = None, until: date | None = None,
                  k: int | Literal["auto"] | None = None, seed: int | None = None,
                  progress: bool = False) -> RunResult:
    """`segment` on a backend's lines (engine.backend): the tables that grow with the lines come
    from ``work``, everything else runs here, the same for every backend."""
    stages = _Stages(logging.INFO if progress else logging.DEBUG)
    seed = settings.clustering.seed if seed is None else seed
    as_of = work.as_of

    with stages.stage("rfm"):
        segments = scored_segments(work.rfm_table(), settings.rfm)
    if segments.empty:
        raise RunError("no customer with a purchase in the window")
    log.log(stages.level, "%d lines in the window, %d customers with a purchase, as_of %s",
            work.n_lines, len(segments), as_of)
    with stages.stage("sales"):
        sales = work.sales_figures()

    with stages.stage("clustering"):
        clustering = cluster_customers(segments, settings.clustering, k=k, seed=seed)
    segments["cluster"] = clustering.labels
    segments["value_tier"] = segments["cluster"].map(clustering.tiers)

    with stages.stage("classes"):
        segments["customer_class"] = classify(
            segments, None, customers, as_of=as_of, settings=settings.classes,
            tier_names=settings.clustering.tiers,
            growth=work.growth(settings.classes.growth_days))
        profiles = cluster_profiles(segments, settings.strategies, settings.personas)

    clv = None
    if settings.clv.enabled:
        with stages.stage("clv"):
            clv = work.clv(settings.clv,
                           segments[["customer_id", "customer_class", "rfm_segment"]])
        for note in clv.notes:
            log.log(logging.WARNING if clv.customers is None else stages.level, "clv: %s", note)
    work.release_customer_lines()

    rules = recommendations = None
    assignments = segments[["customer_id", "cluster", "value_tier", "customer_class"]]
    if work.has_products:
        with stages.stage("sales by group"):
            sales = replace(sales, groups=work.group_products(assignments))
        with stages.stage("baskets"):
            rules = work.rules(assignments, settings.baskets)
        with stages.stage("recommendations"):
            recommendations = work.recommendations(assignments, rules, settings.recommend)
    else:
        log.info("the lines have no stock codes: basket rules and recommendations skipped")
    work.release()

    class_counts = segments["customer_class"].value_counts()
    diagnostics = {
        **clustering.diagnostics,
        "tiers": {str(cluster): tier for cluster, tier in clustering.tiers.items()},
        "value_scores": {str(cluster): score for cluster, score in clustering.value_scores.items()},
        "classes": {name: int(class_counts.get(name, 0)) for name in CLASSES},
        "timings": stages.seconds,
        "skipped": ([] if rules is not None else ["rules"])
        + ([] if recommendations is not None else ["recommendations"])
        + ([] if clv is not None and clv.customers is not None else ["clv"]),
        "clv_notes": [] if clv is None else clv.notes,
    }
    return RunResult(
        as_of=as_of, since=since, until=until, k=clustering.k,
        k_mode=str(clustering.diagnostics["k_mode"]), seed=seed, n_lines=work.n_lines,
        segments=segments[SEGMENT_RESULT_COLUMNS].reset_index(drop=True), profiles=profiles,
        rules=rules, recommendations=recommendations, diagnostics=diagnostics, clv=clv,
        sales=sales,
    )


def execute_run(engine: Engine, settings: Settings, *, as_of: date | None = None,
                since: date | None = None, until: date | None = None,
                k: int | Literal["auto"] | None = None, progress: bool = False,
                backend: Literal["pandas", "spark"] | None = None) -> int:
    """Records a run, computes it and publishes its results in one transaction; returns its id.
    ``backend`` (default: [engine] backend) is where the work that grows with the lines runs.

    On any failure the run is marked failed with its error and RunError is raised; the published
    run (the latest succeeded one) is untouched. Runs left 'running' by a process that no longer
    exists (killed) are marked failed first.
    """
    from engine.store import results as result_store
    from engine.store import runs as run_store
    from engine.store.customers import load_customers
    from engine.store.jobs import lines_seen
    from engine.store.lines_read import load_lines

    level = logging.INFO if progress else logging.DEBUG
    for abandoned in run_store.fail_abandoned_runs(engine=engine):
        log.warning("run %d was left running by a process that is gone; marked failed", abandoned)
    requested_k = settings.clustering.k if k is None else k
    params = {"as_of": as_of and as_of.isoformat(), "since": since and since.isoformat(),
              "until": until and until.isoformat(), "k": requested_k,
              "seed": settings.clustering.seed, "features": list(settings.clustering.features),
              "score_levels": settings.rfm.score_levels, "classes": settings.classes.model_dump(),
              "pid": os.getpid(), "host": socket.gethostname(),
              # Read before the load: what the scheduler's fresh-data check compares with.
              "lines_seen": lines_seen(engine=engine)}
    run_id = run_store.create_run(engine=engine, params=params, as_of=as_of, since=since,
                                  until=until, k_mode="auto" if requested_k == "auto" else "fixed",
                                  seed=settings.clustering.seed)
    log.log(level, "run %d started", run_id)
    started = time.perf_counter()
    try:
        load_until = last_day(until, as_of)
        load_start = time.perf_counter()
        if (backend or settings.engine.backend) == "spark":
            from engine.spark.session import require_pyspark

            require_pyspark()
            from engine.spark.lines import spark_lines  # here: only a Spark run loads pyspark

            work: LineWork = spark_lines(engine, settings, as_of=as_of, since=since,
                                         until=until)
            read = ("spark", work.n_lines, "lines in the window")
        else:
            lines = load_lines(engine=engine, until=load_until, columns=RUN_LINE_COLUMNS)
            read = ("load", len(lines), "lines")
            work = pandas_lines(lines, settings, as_of=as_of, since=since, until=until)
            del lines  # the run's largest object: only the work's history and window hold it
        customers = load_customers(engine=engine)
        stage, count, unit = read
        log.log(level, "%s: %.2fs (%d %s, %d customers on file)", stage,
                time.perf_counter() - load_start, count, unit, len(customers))
        result = segment_lines(work, customers, settings, since=since, until=until, k=k,
                               progress=progress)
        del work, customers
        write_start = time.perf_counter()
        result_store.save_results(engine=engine, run_id=run_id, result=result)
        log.log(level, "write: %.2fs", time.perf_counter() - write_start)
    except BaseException as exc:
        message = one_line(exc)
        run_store.mark_failed(engine=engine, run_id=run_id, error=message)
        log.log(level, "run %d failed: %s", run_id, message)
        if isinstance(exc, Exception):
            raise RunError(f"run {run_id} failed: {message}") from exc
        raise
    log.log(level, "run %d succeeded: %d customers, k = %d, %.2fs in all", run_id,
            result.n_customers, result.k, time.perf_counter() - started)
    return run_id
