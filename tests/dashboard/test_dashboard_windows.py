"""An analyst's date window, as the dashboard computes it (dashboard.frames on the real app, the
demo data loaded and segmented by the real engine), against what the engine itself gives."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pytest

from dashboard import frames
from dashboard.app import create_app
from dashboard.filters import Filters
from engine.demo import generate_demo_data
from engine.ingest import ingest_file
from engine.pipeline import RUN_LINE_COLUMNS, execute_run, segment
from engine.settings import Settings
from engine.store import get_engine, init_db
from engine.store.lines import load_customers, load_lines
from tests.conftest import make_settings

pytestmark = pytest.mark.slow

RFM_COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score",
               "m_score", "rfm_code", "rfm_score", "rfm_segment"]


@dataclass
class Demo:
    settings: Settings
    app: Any
    lines: pd.DataFrame
    customers: pd.DataFrame


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("windows")
    data = generate_demo_data(folder / "data", customers=250, seed=7)
    settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}")
    engine = get_engine(settings.database_url)
    init_db(engine)
    ingest_file(engine, settings, data.transactions_path, customers=data.customers_path)
    execute_run(engine, settings)
    lines = load_lines(engine, columns=RUN_LINE_COLUMNS)
    yield Demo(settings, create_app(settings, secret_key="test"), lines, load_customers(engine))
    engine.dispose()


def _window_rows(demo: Demo, filters: Filters) -> tuple[frames.Scope, pd.DataFrame]:
    with demo.app.server.test_request_context("/segments"):
        scope = frames.scope(filters)
        return scope, frames.segment_rows(scope)


def _day_without_sales(lines: pd.DataFrame) -> date:
    """A day in the middle of the data with no line at all, the day before it with some."""
    days = set(lines["ts"].dt.date)
    middle = sorted(days)[len(days) // 2]
    for offset in range(200):
        day = middle + timedelta(days=offset)
        if day not in days and day - timedelta(days=1) in days:
            return day
    raise AssertionError("the demo data sells every day")


def test_window_ending_on_a_day_without_sales_matches_a_run_of_that_window(demo: Demo) -> None:
    """recency_days counts to the day after the window's last sale, as `segmint run --since
    --until` does (it counted to the day after until: one day more for every customer)."""
    until = _day_without_sales(demo.lines)
    since = until - timedelta(days=180)
    scope, shown = _window_rows(demo, Filters(since=since, until=until))
    assert scope.recomputed and (scope.since, scope.until) == (since, until)
    engine_run = segment(demo.lines, demo.customers, demo.settings, since=since, until=until)
    assert engine_run.as_of < until + timedelta(days=1)
    expected = engine_run.segments[RFM_COLUMNS].sort_values("customer_id").reset_index(drop=True)
    assert len(shown) == len(expected) > 50
    pd.testing.assert_frame_equal(shown[RFM_COLUMNS].reset_index(drop=True), expected,
                                  check_dtype=False)
