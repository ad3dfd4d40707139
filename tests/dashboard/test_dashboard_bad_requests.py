"""Bad request parameters get a clear message or a 400, never a 500 (issue 19 item 11): the real
app on the demo data, through Flask's test client (the page layouts come from Dash's callback
POSTs, as in a browser)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from dashboard.app import create_server
from dashboard.auth import hash_password
from engine.demo import generate_demo_data
from engine.ingest import ingest_file
from engine.pipeline import execute_run
from engine.store import get_engine, init_db
from engine.store.users import save_user
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("bad-requests")
    data = generate_demo_data(folder / "data", customers=120, seed=3)
    settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}")
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    ingest_file(engine, settings, data.transactions_path, customers=data.customers_path)
    execute_run(engine, settings)
    save_user(engine=engine, username="ann", password_hash=hash_password("ann-analyst-pw"),
              role="analyst")
    yield create_server(settings, secret_key="test-secret")
    engine.dispose()


@pytest.fixture(scope="module")
def analyst(server: Any) -> FlaskClient:
    client: FlaskClient = server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"username": "ann", "password": "ann-analyst-pw", "csrf_token": token.group(1)}
    assert client.post("/login", data=form).status_code == 302
    assert client.get("/").status_code == 200
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    client.environ_base["HTTP_X_CSRFTOKEN"] = cookie.value
    return client


def _page(client: FlaskClient, path: str, search: str) -> Any:
    """Dash pages' own callback: the page content for a pathname and a query string."""
    payload = {"output": ".._pages_content.children..._pages_store.data..",
               "outputs": [{"id": "_pages_content", "property": "children"},
                           {"id": "_pages_store", "property": "data"}],
               "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                          {"id": "_pages_location", "property": "search", "value": search}],
               "state": [], "changedPropIds": ["_pages_location.pathname"]}
    return client.post("/_dash-update-component", json=payload)


BAD_QUERIES = ["?until=9999-12-31", "?since", "?since=&until=&classes=", "?since=0001-01-01",
               "?since=", "?until=",
               "?since=9999-12-31&until=9999-12-31", "?since=2011-02-31", "?until=yesterday",
               "?since=2011-01-01T99:00", "?classes=", "?classes=%00|%FF", "?segments=<b>x</b>"]


@pytest.mark.parametrize("path", ["/", "/products", "/segments"])
@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_dates_in_the_url_never_give_a_500(analyst: FlaskClient, path: str,
                                               query: str) -> None:
    """Before: ?until=9999-12-31 answered 500 (OverflowError) on Overview, Segments, Products."""
    response = _page(analyst, path, query)
    assert response.status_code in (200, 204, 400), (path, query, response.status_code)


def test_an_ignored_date_is_said_in_the_filter_bar(analyst: FlaskClient) -> None:
    """The analyst's filter bar says which parameter it ignored instead of failing."""
    outputs = [{"id": "filter-dates", "property": "start_date"},
               {"id": "filter-dates", "property": "end_date"},
               {"id": "filter-classes", "property": "value"},
               {"id": "filter-segments", "property": "value"},
               {"id": "filter-message", "property": "children"}]
    payload = {"output": "..filter-dates.start_date...filter-dates.end_date...filter-classes."
                         "value...filter-segments.value...filter-message.children..",
               "outputs": outputs,
               "inputs": [{"id": "_pages_location", "property": "search",
                           "value": "?since=2011-02-01&until=9999-12-31"}],
               "state": [], "changedPropIds": ["_pages_location.search"]}
    response = analyst.post("/_dash-update-component", json=payload)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    shown = response.get_json()["response"]
    assert shown["filter-dates"]["start_date"] == "2011-02-01"
    assert shown["filter-message"]["children"] == (
        "Ignored until=9999-12-31: not a date between 1900-01-01 and 2199-12-31 (YYYY-MM-DD).")


def _rows(client: FlaskClient, request: Any) -> Any:
    payload = {
        "output": "..segments-customer-table.getRowsResponse...segments-customer-count.children..",
        "outputs": [{"id": "segments-customer-table", "property": "getRowsResponse"},
                    {"id": "segments-customer-count", "property": "children"}],
        "inputs": [{"id": "segments-customer-table", "property": "getRowsRequest",
                    "value": request}],
        "state": [{"id": "segments-customer-query", "property": "data", "value": ""}],
        "changedPropIds": ["segments-customer-table.getRowsRequest"],
    }
    return client.post("/_dash-update-component", json=payload)


def _export(client: FlaskClient, request: Any) -> Any:
    payload = {
        "output": "segments-export-download.data",
        "outputs": {"id": "segments-export-download", "property": "data"},
        "inputs": [{"id": "segments-export", "property": "n_clicks", "value": 1}],
        "state": [{"id": "segments-export-query", "property": "data", "value": ""},
                  {"id": "segments-customer-table", "property": "getRowsRequest",
                   "value": request}],
        "changedPropIds": ["segments-export.n_clicks"],
    }
    return client.post("/_dash-update-component", json=payload)


BAD_GRID_REQUESTS = [
    {"startRow": "abc", "endRow": 100},
    {"startRow": 0, "endRow": "ten"},
    {"startRow": 0, "endRow": 100, "sortModel": "monetary"},
    {"startRow": 0, "endRow": 100, "sortModel": [{"colId": 5, "sort": "desc"}]},
    {"startRow": 0, "endRow": 100, "sortModel": ["monetary"]},
    {"startRow": 0, "endRow": 100, "filterModel": "x"},
    {"startRow": 0, "endRow": 100, "filterModel": {"monetary": "x"}},
    {"startRow": 0, "endRow": 100, "filterModel": {"monetary": {
        "filterType": "number", "type": "greaterThan", "filter": "abc"}}},
    {"startRow": 0, "endRow": 100, "filterModel": {"monetary": {
        "filterType": "number", "operator": "AND", "conditions": "nope"}}},
    {"startRow": 0, "endRow": 100, "filterModel": {"rfm_segment": {
        "filterType": "text", "type": ["equals"], "filter": "VIP"}}},
    [1, 2, 3],
]


@pytest.mark.parametrize("request_", BAD_GRID_REQUESTS)
def test_malformed_grid_requests_get_a_400(analyst: FlaskClient, request_: Any) -> None:
    """Before: a non-numeric startRow, a bad filter or sort model answered 500."""
    for response in (_rows(analyst, request_), _export(analyst, request_)):
        assert response.status_code == 400, (request_, response.status_code)
        assert "getRowsRequest" in response.get_json()["error"] or "column" in (
            response.get_json()["error"])


def test_a_good_grid_request_still_answers(analyst: FlaskClient) -> None:
    good = {"startRow": 0, "endRow": 10, "sortModel": [{"colId": "monetary", "sort": "desc"}],
            "filterModel": {"monetary": {"filterType": "number", "type": "greaterThan",
                                         "filter": "0"}}}
    response = _rows(analyst, good)
    assert response.status_code == 200
    assert len(response.get_json()["response"]["segments-customer-table"]["getRowsResponse"][
        "rowData"]) == 10
    assert _export(analyst, good).status_code == 200
