"""The dashboard's default views read the published run's own sales figures (made by the backend
that held the lines, engine.sales_figures) exactly when they equal what the store gives: the same
KPIs, months, products and top products per class and cluster as the store's SQL and lines;
after a later load, or for a window the run did not cover, the figures come from the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dashboard import frames
from dashboard.app import create_app
from dashboard.filters import Filters
from engine.demo import generate_demo_data
from engine.ingest import ingest_file
from engine.pipeline import execute_run
from engine.settings import Settings
from engine.store import get_engine, init_db
from engine.store import sales as sales_store
from engine.store.lines_read import load_lines
from tests.conftest import make_settings
from tests.engine.factories import line, lines_frame, write_generic_csv

pytestmark = pytest.mark.slow


@dataclass
class Shop:
    settings: Settings
    engine: Any
    folder: Path

    def app(self) -> Any:
        # A new app per check: its cache starts empty, so nothing computed before is reused.
        return create_app(self.settings, secret_key="test")


@pytest.fixture
def shop(tmp_path: Path, db_url: str) -> Iterator[Shop]:
    data = generate_demo_data(tmp_path / "data", customers=150, seed=11)
    settings = make_settings(tmp_path, db_url, "[clv]\nenabled = false\n")
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    ingest_file(engine, settings, data.transactions_path, customers=data.customers_path)
    yield Shop(settings, engine, tmp_path)
    engine.dispose()


def store_views(shop: Shop, scope: frames.Scope) -> dict[str, Any]:
    """What the store gives for the default views: KPIs and months of every line (Overview),
    products of the run's window (Products)."""
    codes = shop.settings.ingest.non_product_codes
    return {"kpis": sales_store.kpis(engine=shop.engine),
            "months": sales_store.monthly_trends(engine=shop.engine),
            "products": sales_store.window_products(engine=shop.engine, non_product_codes=codes,
                                                    since=scope.since, until=scope.until)[0]}


def dashboard_views(shop: Shop) -> dict[str, Any]:
    with shop.app().server.test_request_context("/products"):
        scope = frames.scope(Filters())
        kpis, months = frames.sales(None, None)
        return {"kpis": kpis, "months": months, "scope": scope,
                "products": frames.products(scope.since, scope.until),
                "by": {by: frames.products_by_group(scope, Filters(), by)
                       for by in frames.PRODUCT_GROUPINGS},
                "from run": frames.run_sales(None, None, monthly=True) is not None,
                "products from run": frames.run_sales(scope.since, scope.until) is not None}


def lines_top_products(shop: Shop) -> dict[str, Any]:
    """Top products per class and cluster the way the dashboard computes them from the lines."""
    with shop.app().server.test_request_context("/products"):
        scope = frames.scope(Filters())
        chosen = frames._selected_lines(scope, Filters())
        return {by: frames._described(frames.top_products(chosen, by, 5))
                for by in frames.PRODUCT_GROUPINGS}


def assert_views_equal(shown: dict[str, Any], expected: dict[str, Any]) -> None:
    assert shown["kpis"] == pytest.approx(expected["kpis"], rel=1e-9)
    pd.testing.assert_frame_equal(shown["months"], expected["months"], rtol=1e-9)
    pd.testing.assert_frame_equal(shown["products"], expected["products"], rtol=1e-9)


def test_default_views_come_from_the_run_and_equal_the_store(shop: Shop) -> None:
    execute_run(shop.engine, shop.settings)
    shown = dashboard_views(shop)
    assert shown["from run"] and shown["products from run"]
    assert_views_equal(shown, store_views(shop, shown["scope"]))
    expected_top = lines_top_products(shop)
    for by in frames.PRODUCT_GROUPINGS:
        assert len(shown["by"][by]) > 0
        pd.testing.assert_frame_equal(shown["by"][by], expected_top[by], rtol=1e-9)


def test_a_later_load_sends_the_views_back_to_the_store(shop: Shop) -> None:
    execute_run(shop.engine, shop.settings)
    before = dashboard_views(shop)
    last = load_lines(engine=shop.engine)["ts"].max()
    later = lines_frame([line("late-customer", "L1", last + timedelta(days=2), 123.25,
                              stock_code="LATE1")])
    ingest_file(shop.engine, shop.settings, write_generic_csv(later, shop.folder / "late.csv"))
    after = dashboard_views(shop)
    assert not after["from run"] and not after["products from run"]
    assert_views_equal(after, store_views(shop, after["scope"]))
    assert after["kpis"]["revenue"] == pytest.approx(before["kpis"]["revenue"] + 123.25)
    assert after["kpis"]["lines"] == before["kpis"]["lines"] + 1
    assert after["months"]["month"].iloc[-1] >= before["months"]["month"].iloc[-1]
    # Products keep showing the run's window, which ends before the later line.
    assert after["scope"].until == before["scope"].until
    assert "LATE1" not in set(after["products"]["stock_code"])


def test_a_run_ending_early_serves_its_products_but_not_the_months(shop: Shop) -> None:
    last = load_lines(engine=shop.engine)["ts"].max().date()
    execute_run(shop.engine, shop.settings, until=last - timedelta(days=45))
    with shop.app().server.test_request_context("/products"):
        scope = frames.scope(Filters())
        assert scope.until == last - timedelta(days=45)
        # Overview shows every line: not the run's window.
        assert frames.run_sales(None, None, monthly=True) is None
        # Products of the run's own window: its figures, equal to the store's for that window.
        assert frames.run_sales(scope.since, scope.until) is not None
        shown = frames.products(scope.since, scope.until)
    expected = sales_store.window_products(
        engine=shop.engine, non_product_codes=shop.settings.ingest.non_product_codes,
        until=scope.until)[0]
    pd.testing.assert_frame_equal(shown, expected, rtol=1e-9)
