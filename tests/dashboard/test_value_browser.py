"""The "Value & risk" page in headless Chromium on a real served store: one published run with
CLV (demo data through the real CLI), its three figures drawn with data, the at-risk table's rows
as the store has them, and its CSV export with SPEC.md's `export clv` columns first.

The serving, login and browser helpers are test_dashboard_browser.py's; this module builds a
smaller store (one run) so it stays quick.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import pytest

from engine.columns import CLV_COLUMNS
from engine.store import clv as clv_store
from engine.store import get_engine
from engine.store import results as result_store
from engine.store import runs as run_store
from tests.dashboard import test_dashboard_browser
from tests.dashboard.test_dashboard_browser import (
    USERS,
    Site,
    _browser_login,
    _cli,
    _click,
    _errors,
    _open,
    _serve,
    _wait,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The headless Chromium fixtures, shared with the main browser suite.
chromium = test_dashboard_browser.chromium
browser = test_dashboard_browser.browser

AT_RISK_CONTEXT = ["customer_class", "rfm_segment", "monetary"]
FIGURES = ("value-clv-distribution", "value-p-alive", "value-calibration")


@pytest.fixture(scope="module")
def value_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("dashboard-value")
    (folder / "config.toml").write_text("[dashboard]\nworkers = 2\n")
    _cli(folder, "init-db")
    for name, (role, password) in USERS.items():
        _cli(folder, "users", "add", name, "--role", role, input=password + "\n")
    _cli(folder, "generate-demo-data", "data", "--customers", "300", "--seed", "7")
    _cli(folder, "ingest", "data/transactions.csv", "--customers", "data/customers.csv")
    _cli(folder, "run")
    yield from _serve(folder)


def _store(site: Site) -> tuple[dict[str, Any], Any, Any]:
    """The published run's stored fit, CLV rows and segment rows."""
    engine = get_engine(f"sqlite:///{site.folder / 'segmint.db'}")
    try:
        run = run_store.published_run(engine=engine)
        assert run is not None
        run_id = int(run["id"])
        fit = clv_store.read_fit(engine=engine, run_id=run_id)
        assert fit is not None and fit["bgnbd"], fit
        return (fit, clv_store.read_customers(engine=engine, run_id=run_id),
                result_store.read_segments(engine=engine, run_id=run_id))
    finally:
        engine.dispose()


def _figure(driver: Any, element_id: str) -> list[dict[str, Any]] | None:
    """The traces plotly drew in a dcc.Graph, with their data decoded (the figure JSON sends
    arrays base64-encoded; plotly's full data holds them as typed arrays)."""
    traces: list[dict[str, Any]] | None = driver.execute_script(
        "const plot = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
        "if (!plot || !plot._fullData) return null;"
        "const plain = v => v == null ? null : ArrayBuffer.isView(v) ? Array.from(v)"
        "  : Array.isArray(v) ? v.map(plain) : v;"
        "return plot._fullData.map(t => ({type: t.type, name: t.name, x: plain(t.x),"
        "  y: plain(t.y), z: plain(t.z)}));", element_id)
    return traces


def _grid_rows(driver: Any, element_id: str) -> list[dict[str, Any]]:
    """Every row the AG Grid holds, in its displayed order."""
    rows: list[dict[str, Any]] = driver.execute_script(
        "const api = dash_ag_grid.getApi(arguments[0]); const rows = [];"
        "api.forEachNodeAfterFilterAndSort(node => rows.push(node.data)); return rows;",
        element_id)
    return rows


def test_value_page_shows_the_runs_clv_backtest_and_at_risk_customers(
        value_site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    fit, clv, segments = _store(value_site)
    _browser_login(browser, value_site, "ann")
    _open(browser, value_site, "/value", "Value & risk")
    assert _errors(browser) == []
    _wait(browser, lambda d: all(_figure(d, name) for name in FIGURES), timeout=30)

    distribution = _figure(browser, "value-clv-distribution") or []
    assert {trace["type"] for trace in distribution} == {"histogram"}
    assert sum(len(trace["x"]) for trace in distribution) == len(clv)
    heatmap = _figure(browser, "value-p-alive") or []
    assert heatmap[0]["type"] == "heatmap"
    z = [value for row in heatmap[0]["z"] for value in row]
    assert len(z) > 40 and min(z) < 0.5 < max(z) <= 1.0  # alive and gone both shown
    calibration = {trace["name"]: trace for trace in _figure(browser, "value-calibration") or []}
    stored = [row for row in fit["backtest"]["calibration"] if row["customers"]]
    assert calibration["actual"]["x"] == [row["frequency"] for row in stored]
    assert calibration["actual"]["y"] == pytest.approx([row["actual"] for row in stored])
    assert calibration["predicted (BG/NBD)"]["y"] == pytest.approx(
        [row["predicted"] for row in stored])
    text = browser.find_element(By.ID, "value-backtest-text").text
    assert fit["backtest"]["cutoff"] in text

    # The table: the store's high-risk customers, most past spend first, with the store's values.
    high = clv[clv["churn_risk"] == "high"].merge(segments, on="customer_id",
                                                   suffixes=("", "_segments"))
    rows = _grid_rows(browser, "value-at-risk-table")
    assert len(rows) == min(len(high), 500) > 0
    monetary = [row["monetary"] for row in rows]
    assert monetary == sorted(monetary, reverse=True)
    expected = high.set_index("customer_id")
    for row in rows:
        want = expected.loc[row["customer_id"]]
        assert row["churn_risk"] == "high"
        assert row["customer_class"] == want["customer_class"]
        assert row["monetary"] == pytest.approx(float(want["monetary"]))
        for column in ("frequency", "p_alive", "expected_purchases_90d", "clv_365d"):
            assert row[column] == pytest.approx(float(want[column]), abs=1e-3), column
    first = browser.find_element(By.CSS_SELECTOR, "#value-at-risk-table .ag-center-cols-container "
                                 ".ag-row[row-index='0'] [col-id='customer_id']")
    assert first.text == rows[0]["customer_id"]

    # Its CSV: SPEC.md's `export clv` columns, then the class, segment and past spend shown.
    _click(browser, "value-export")
    _wait(browser, lambda d: list(d.downloads.glob("*.csv")))
    exported = next(browser.downloads.glob("*.csv"))
    with exported.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == CLV_COLUMNS + AT_RISK_CONTEXT
    assert [row["customer_id"] for row in table] == [row["customer_id"] for row in rows]
    assert float(table[0]["clv_365d"]) == pytest.approx(
        float(expected.loc[table[0]["customer_id"], "clv_365d"]), abs=1e-3)


def test_manager_sees_the_value_page_without_the_export(value_site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _browser_login(browser, value_site, "max")
    _open(browser, value_site, "/value", "Value & risk")
    assert _errors(browser) == []
    assert browser.find_elements(By.ID, "value-at-risk-table")
    assert not browser.find_elements(By.ID, "value-export")

