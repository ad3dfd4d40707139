"""An analyst's date window, as the dashboard computes it (dashboard.frames on the real app, the
demo data loaded and segmented by the real engine), against what the engine itself gives."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
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
from engine.store.customers import load_customers
from engine.store.lines_read import load_lines
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


@pytest.fixture(scope="module", params=["columnar copy", "store"])
def demo(tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[Demo]:
    """The demo store; windows read the columnar copy of its lines, or the store itself
    ([dashboard] columnar_dir = "")."""
    folder = tmp_path_factory.mktemp("windows")
    data = generate_demo_data(folder / "data", customers=250, seed=7)
    settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}",
                             "" if request.param == "columnar copy"
                             else '[dashboard]\ncolumnar_dir = ""\n')
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    ingest_file(engine, settings, data.transactions_path, customers=data.customers_path)
    execute_run(engine, settings)
    lines = load_lines(engine=engine, columns=RUN_LINE_COLUMNS)
    yield Demo(settings, create_app(settings, secret_key="test"), lines,
               load_customers(engine=engine))
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


def test_window_rows_and_kpis_from_the_summary_equal_those_from_the_lines(demo: Demo) -> None:
    """The window's customer rows (classes and clusters included) and segment KPIs the
    dashboard computes from the invoice_day summary equal those computed from the lines."""
    from engine.kpis import segment_kpis
    from engine.store import invoice_days
    from engine.window import window_segments

    until = _day_without_sales(demo.lines) + timedelta(days=30)
    since = until - timedelta(days=90)
    scope, shown = _window_rows(demo, Filters(since=since, until=until))
    with demo.app.server.test_request_context("/segments"):
        assert (frames.columnar_copy() is None) == (demo.settings.dashboard.columnar_dir == "")
        run_rows = frames.run_rows(int(scope.run_id or 0))
        kpis = frames.segment_kpis(scope, Filters())
    assert scope.run is not None
    from_lines = window_segments(demo.lines, demo.customers, run=scope.run, run_rows=run_rows,
                                 settings=demo.settings, since=since, until=until)
    assert len(from_lines) > 50 and from_lines["customer_class"].nunique() > 2
    pd.testing.assert_frame_equal(shown, from_lines)
    engine = get_engine(demo.settings.database_url)
    history = invoice_days.customer_history(engine=engine, until=until, active_since=since)
    engine.dispose()
    assert history["customer_id"].nunique() < demo.lines["customer_id"].nunique()
    as_of = until + timedelta(days=1)
    expected = segment_kpis(demo.lines[demo.lines["ts"] < pd.Timestamp(as_of)], from_lines,
                            as_of=as_of, since=since,
                            non_product_codes=demo.settings.ingest.non_product_codes)
    pd.testing.assert_frame_equal(kpis, expected)


def _page(demo: Demo, path: str, **params: str) -> dict[str, Any]:
    """A page as an analyst gets it for these URL parameters: {component id: the figure or text
    it shows}."""
    import dash
    from flask import session

    layout = next(page["layout"] for page in dash.page_registry.values()
                  if page["path"] == path)
    with demo.app.server.test_request_context(path):
        session["user"], session["role"] = "ann", "analyst"
        page = layout(**params)
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list | tuple):
            for child in node:
                walk(child)
            return
        if not hasattr(node, "to_plotly_json"):
            return
        identifier = getattr(node, "id", None)
        if identifier is not None:
            found[identifier] = getattr(node, "figure", None) or getattr(node, "children", None)
        walk(getattr(node, "children", None))
    walk(page)
    return found


def _numbers(values: Any) -> list[float]:
    """A figure's numbers, plain or as plotly's typed array ({"dtype", "bdata"})."""
    if isinstance(values, dict):
        values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return [round(float(value), 2) for value in values]


def _treemap_leaves(figure: dict[str, Any]) -> dict[str, float]:
    trace = figure["data"][0]
    return {leaf: value for leaf, value, parent
            in zip(trace["ids"], _numbers(trace["values"]), trace["parents"], strict=True)
            if parent}


def _window_lines(demo: Demo, since: date, until: date) -> pd.DataFrame:
    lines = demo.lines
    codes = set(demo.settings.ingest.non_product_codes)
    chosen = ((lines["ts"] >= pd.Timestamp(since))
              & (lines["ts"] < pd.Timestamp(until + timedelta(days=1)))
              & lines["customer_id"].notna() & lines["stock_code"].notna()
              & ~lines["stock_code"].isin(codes))
    return lines[chosen]


def _top_per_class(lines: pd.DataFrame, rows: pd.DataFrame) -> dict[str, float]:
    joined = lines.merge(rows[["customer_id", "customer_class"]], on="customer_id")
    revenue = joined.groupby(["customer_class", "stock_code"])["amount"].sum().reset_index()
    revenue = revenue.sort_values(["customer_class", "amount", "stock_code"],
                                  ascending=[True, False, True])
    top = revenue.groupby("customer_class").head(5)
    return {f"{group}/{code}": round(float(value), 2) for group, code, value
            in top.itertuples(index=False) if value > 0}


def test_products_of_a_window_are_grouped_by_the_window_classes(demo: Demo) -> None:
    """The Products page of a recomputed window groups the window's lines by the classes the
    Segments page shows for that window (it used the run's stored classes), and its class
    filter limits every figure to the customers of that class (it was ignored)."""
    until = date.fromisoformat(str(demo.lines["ts"].max())[:10]) - timedelta(days=60)
    since = until - timedelta(days=120)
    _scope, rows = _window_rows(demo, Filters(since=since, until=until))
    with demo.app.server.test_request_context("/products"):
        run_rows = frames.run_rows(int(_scope.run_id or 0))
    moved = rows.merge(run_rows, on="customer_id", suffixes=("", "_run"))
    assert (moved["customer_class"] != moved["customer_class_run"]).any()
    lines = _window_lines(demo, since, until)

    shown = _page(demo, "/products", since=since.isoformat(), until=until.isoformat())
    assert "recomputed" in str(shown["scope-note"])
    assert _treemap_leaves(shown["products-top-by-class"]) == _top_per_class(lines, rows)

    chosen = str(rows["customer_class"].value_counts().index[0])
    selected = rows[rows["customer_class"] == chosen]
    shown = _page(demo, "/products", since=since.isoformat(), until=until.isoformat(),
                           classes=chosen)
    assert f"Filtered to the customers in {chosen}" in str(shown["scope-note"])
    assert _treemap_leaves(shown["products-top-by-class"]) == _top_per_class(lines, selected)
    bought = lines[lines["customer_id"].isin(selected["customer_id"])]
    revenue = bought.groupby("stock_code")["amount"].sum()
    top = revenue.reset_index().sort_values(["amount", "stock_code"],
                                            ascending=[False, True]).head(10)["amount"]
    bars = _numbers(shown["products-top-revenue"]["data"][0]["x"])
    assert bars[::-1] == _numbers(top)


def test_overview_says_class_and_segment_filters_do_not_apply(demo: Demo) -> None:
    """The overview counts every line: a class filter in its URL is said not to apply there
    (it was silently ignored)."""
    shown = _page(demo, "/", classes="High value")
    assert "class and segment filters do not apply here" in str(shown["scope-note"])


def test_a_lone_bound_beyond_the_data_gives_an_empty_window_not_a_backwards_one(
        demo: Demo) -> None:
    """?since= after the last sale (or ?until= before the first) is a one-day window at that
    day, with nothing in it: the pages say so instead of 'window 2030-01-01 – 2025-11-30'."""
    last = demo.lines["ts"].max().date()
    first = demo.lines["ts"].min().date()
    for params, day in (({"since": "2030-01-01"}, "2030-01-01"),
                        ({"until": "2001-01-01"}, "2001-01-01")):
        window = f"{day} – {day}"
        overview = _page(demo, "/", **params)
        assert f"Window {window}:" in str(overview["scope-note"])
        assert overview["kpi-orders"] == "0"
        segments = _page(demo, "/segments", **params)
        assert f"window {window}" in str(segments["scope-note"])
        assert segments["segments-customer-count"].startswith("0 customers")
        assert str(last) not in str(segments["scope-note"]).split("window")[1]
        assert str(first) not in str(overview["scope-note"])


def test_offers_page_says_how_many_messages_wait_to_be_retried(demo: Demo) -> None:
    """A message Twilio could not take (429/5xx retries used up) waits as 'retry' for a later
    pass: the Offers page counts it apart from the sent ones."""
    import dash
    from flask import session
    from sqlalchemy import delete

    from engine.models import OfferMessage
    from tests.conftest import session_scope

    engine = get_engine(demo.settings.database_url)
    now = pd.Timestamp("2025-12-02", tz="UTC").to_pydatetime()
    with session_scope(engine) as db:
        db.add(OfferMessage(offer_key="vip:c1", offer_id="vip", customer_id="c1", run_id=1,
                            phone="+447700900123", body="hi", status="retry", created_at=now,
                            updated_at=now))
    try:
        layout = next(page["layout"] for page in dash.page_registry.values()
                      if page["path"] == "/offers")
        with demo.app.server.test_request_context("/offers"):
            session["user"], session["role"] = "ann", "analyst"
            text = str(layout().to_plotly_json())
        assert "1 waiting to retry (Twilio was unreachable)" in text
    finally:
        with engine.begin() as connection:
            connection.execute(delete(OfferMessage).where(OfferMessage.offer_key == "vip:c1"))
        engine.dispose()


def test_the_warm_up_writes_a_missing_columnar_copy(demo: Demo) -> None:
    """A store whose copy is missing (loaded by an older version, or removed by hand): the
    server's warm-up writes it before warming the pages; with columnar_dir = "" none is kept."""
    import shutil

    from dashboard.serve import _warm_pages
    from engine.store import columnar

    engine = get_engine(demo.settings.database_url)
    folder = columnar.settings_folder(demo.settings)
    if folder is None:
        _warm_pages(demo.settings)
        assert columnar.current_for(engine, demo.settings) is None
        return
    before = columnar.current_for(engine, demo.settings)
    assert before is not None
    shutil.rmtree(folder)
    assert columnar.current_for(engine, demo.settings) is None
    _warm_pages(demo.settings)
    assert columnar.current_for(engine, demo.settings) == before


def test_the_warm_up_caches_what_every_window_reads(demo: Demo) -> None:
    """No default view reads the sign-up dates nor the new customers per month, but every
    analyst's first window does (each a second's SQL at 10 M lines): the warm-up leaves them in
    the shared cache, with no expiry (their keys carry the data version)."""
    from dashboard import context
    from dashboard.serve import _warm_pages
    from engine.store import sales

    with demo.app.server.test_request_context("/"):
        context.cache().clear()
        for name in ("signups", "new-customers"):
            assert context.cache().get(context.cache_key(name)) is None
    _warm_pages(demo.settings)
    with demo.app.server.test_request_context("/"):
        stored = context.cache().get(context.cache_key("signups"))
        months = context.cache().get(context.cache_key("new-customers"))
    assert stored is not None and months is not None
    expected = demo.customers.set_index("customer_id")[["signup_date"]]
    pd.testing.assert_frame_equal(stored, expected.astype({"signup_date": "datetime64[ns]"}))
    pd.testing.assert_frame_equal(months, sales.new_customers_by_month(
        engine=get_engine(demo.settings.database_url)))
    with demo.app.server.test_request_context("/"):
        kept = frames.new_customers()
        context.flush()
        context.cache().delete(context.cache_key("new-customers"))  # as if it had expired
    with demo.app.server.test_request_context("/"):
        assert frames.new_customers() is kept  # this worker's own, not computed again


def test_a_kept_value_is_handed_out_again_until_its_key_changes(demo: Demo) -> None:
    """The run's rows and the sign-up dates stay in the worker (not unpickled from the shared
    cache on every window); a value under another key (a new data version) replaces them."""
    from dashboard import context

    with demo.app.server.test_request_context("/"):
        run_id = frames.scope(Filters()).run_id
        assert run_id is not None
        first = frames.run_rows(run_id)
        assert frames.run_rows(run_id) is first  # the same object, not a fresh unpickling
        context.flush()  # written to the shared cache after the answer
        shared = context.cache().get(context.cache_key("run-rows", run_id))
        assert shared is not first
        pd.testing.assert_frame_equal(shared, first)
        made: list[int] = []

        def compute(value: int) -> list[int]:
            made.append(value)
            return [value]
        assert context.cached("probe", 1, keep=True, compute=lambda: compute(1)) == [1]
        assert context.cached("probe", 2, keep=True, compute=lambda: compute(2)) == [2]
        kept = context.cached("probe", 2, keep=True, compute=lambda: compute(3))
        assert kept == [2] and made == [1, 2]
        context.flush()
    with demo.app.server.test_request_context("/"):  # a new request: nothing of the last one's
        assert context.cached("probe", 1, keep=True, compute=lambda: compute(4)) == [1]
        assert made == [1, 2]  # from the shared cache: it was stored there


def test_the_kept_run_rows_hold_one_string_per_label(demo: Demo) -> None:
    """The run's rows every worker keeps share one string object per segment, tier, class and
    RFM code (not one per customer), and equal the store's rows."""
    from engine.store import results

    with demo.app.server.test_request_context("/"):
        run_id = frames.scope(Filters()).run_id
        assert run_id is not None
        kept = frames.run_rows(run_id)
        stored = results.customer_results(engine=get_engine(demo.settings.database_url),
                                          run_id=run_id)
    pd.testing.assert_frame_equal(kept, stored)
    for name in ("rfm_code", "rfm_segment", "value_tier", "customer_class"):
        assert len({id(value) for value in kept[name]}) == kept[name].nunique(), name
    assert kept["customer_id"].is_unique


def test_a_lasting_value_outlives_cache_seconds(demo: Demo, tmp_path: Any) -> None:
    """A lasting value (the default views' run-scoped figures) stays in the shared cache until
    the data changes; the others expire after [dashboard] cache_seconds."""
    import time

    from dashboard import context

    settings = demo.settings.model_copy(update={"dashboard": demo.settings.dashboard.model_copy(
        update={"cache_seconds": 1, "cache_dir": str(tmp_path / "cache")})})
    app = create_app(settings, secret_key="test")
    with app.server.test_request_context("/"):
        assert context.cached("short", compute=lambda: [1]) == [1]
        assert context.cached("long", lasting=True, compute=lambda: [2]) == [2]
        context.flush()
        keys = {name: context.cache_key(name) for name in ("short", "long")}
        assert context.cache().get(keys["short"]) == [1]
    time.sleep(1.5)
    with app.server.test_request_context("/"):
        assert context.cache().get(keys["short"]) is None
        assert context.cache().get(keys["long"]) == [2]


def test_a_computed_value_reaches_the_shared_cache_after_the_answer(demo: Demo) -> None:
    """The first request answers before its value is written; one asking meanwhile waits for
    the value (the lock is held until it is written), never computes it again."""
    from dashboard import context

    with demo.app.server.test_request_context("/"):
        made: list[int] = []

        def compute() -> list[int]:
            made.append(1)
            return [len(made)]
        key = context.cache_key("written-later")
        assert context.cached("written-later", compute=compute) == [1]
    with demo.app.server.test_request_context("/"):  # another request: the shared cache's
        assert context.cached("written-later", compute=compute) == [1]
        context.flush()
        assert context.cache().get(key) == [1] and made == [1]
        assert context.cache().get(context.lock_key(key)) is None


def test_a_request_asking_twice_for_a_value_gets_the_same_one(demo: Demo) -> None:
    """Within one request a value comes once (Products asks twice for the window's product
    figures): not read back from the shared cache, even when that has lost it meanwhile. The
    next request asks the shared cache again."""
    from dashboard import context

    made: list[int] = []

    def compute() -> list[int]:
        made.append(1)
        return [len(made)]
    with demo.app.server.test_request_context("/"):
        first = context.cached("asked-twice", compute=compute)
        context.flush()
        context.cache().clear()
        assert context.cached("asked-twice", compute=compute) is first
        assert made == [1]
    with demo.app.server.test_request_context("/"):
        assert context.cached("asked-twice", compute=compute) == [2]  # the cache was emptied
