"""The real dashboard: `segmint serve` (gunicorn, 2 workers) on a free port of 127.0.0.1, demo data
loaded and segmented by the real CLI, driven by requests and by headless Chromium (selenium).

Screenshots of every page go to pytest's tmp folder (never the repository).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, update

from dashboard import context
from dashboard.app import flask_server
from engine.columns import SEGMENT_COLUMNS
from engine.settings import load_settings
from engine.store import get_engine
from engine.store.jobs import finish_job, start_job
from tests.conftest import form_token, run_segmint

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
USERS = {"ann": ("analyst", "ann-analyst-pw"), "max": ("manager", "max-manager-pw")}
PAGES = {
    "/": ("Overview", 4),
    "/products": ("Products", 6),
    "/segments": ("Segments", 6),
    "/strategies": ("Strategies", 0),
    "/recommendations": ("Recommendations", 0),
    "/offers": ("Offers", 1),
    "/jobs": ("Jobs", 0),
}


@dataclass
class Site:
    url: str
    folder: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(folder: Path, *args: str, input: str | None = None) -> str:
    env = {"SEGMINT_DATABASE_URL": f"sqlite:///{folder / 'segmint.db'}"}
    done = run_segmint("--config", str(folder / "config.toml"), *args, cwd=folder, env=env,
                       input=input)
    assert done.returncode == 0, f"segmint {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


def _prepare(folder: Path, *, with_run: bool) -> None:
    (folder / "config.toml").write_text("[dashboard]\nworkers = 2\n")
    _cli(folder, "init-db")
    for name, (role, password) in USERS.items():
        _cli(folder, "users", "add", name, "--role", role, input=password + "\n")
    if not with_run:
        return
    _cli(folder, "generate-demo-data", "data", "--customers", "250", "--seed", "7")
    _cli(folder, "ingest", "data/transactions.csv", "--customers", "data/customers.csv")
    _cli(folder, "run", "--until", "2025-05-31")
    _cli(folder, "run")
    _cli(folder, "send-offers", "--dry-run")
    engine = get_engine(f"sqlite:///{folder / 'segmint.db'}")
    done = start_job(engine=engine, job_id="pipeline", trigger="interval[0:01:00]")
    finish_job(engine=engine, history_id=done, status="succeeded", run_id=2)
    failed = start_job(engine=engine, job_id="inbox", trigger="interval[0:05:00]")
    finish_job(engine=engine, history_id=failed, status="failed",
               error="bad.csv: missing column(s) customer_id")
    engine.dispose()


@pytest.fixture(scope="module")
def chromium() -> None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed")


def _serve(folder: Path, config: str = "config.toml") -> Generator[Site, None, None]:
    port = _free_port()
    log = folder / config.replace(".toml", "-serve.log")
    env = {key: value for key, value in os.environ.items() if key != "SEGMINT_SECRET_KEY"}
    env["SEGMINT_DATABASE_URL"] = f"sqlite:///{folder / 'segmint.db'}"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "segmint", "--config", str(folder / config), "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder, env=env, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"segmint serve exited: {log.read_text()[-3000:]}"
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the dashboard did not start within 60 s"
            time.sleep(0.3)
        yield Site(url=url, folder=folder, log=log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("dashboard")
    _prepare(folder, with_run=True)
    yield from _serve(folder)


@pytest.fixture(scope="module")
def empty_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("dashboard-empty")
    _prepare(folder, with_run=False)
    yield from _serve(folder)


def _form_token(session: requests.Session, site: Site) -> str:
    """The login form's hidden csrf_token (the GET also sets the session cookie it belongs to)."""
    return form_token(session.get(site.url + "/login").text)


def _login(site: Site, user: str) -> requests.Session:
    """Signed in as a browser is: the form's token posted back, then a page load whose
    _csrf_token cookie goes into X-CSRFToken on each callback POST (as dash-renderer does)."""
    session = requests.Session()
    response = session.post(site.url + "/login", data={"username": user,
                                                       "password": USERS[user][1],
                                                       "csrf_token": _form_token(session, site)},
                            allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    assert session.get(site.url + "/").status_code == 200
    session.headers["X-CSRFToken"] = session.cookies["_csrf_token"]
    return session


def _export_request(session: requests.Session, site: Site, query: str = "",
                    grid: dict[str, Any] | None = None) -> requests.Response:
    """The Export CSV button; grid is the table's last getRowsRequest (its filters and sort)."""
    payload = {
        "output": "segments-export-download.data",
        "outputs": {"id": "segments-export-download", "property": "data"},
        "inputs": [{"id": "segments-export", "property": "n_clicks", "value": 1}],
        "state": [{"id": "segments-export-query", "property": "data", "value": query},
                  {"id": "segments-customer-table", "property": "getRowsRequest",
                   "value": grid}],
        "changedPropIds": ["segments-export.n_clicks"],
    }
    return session.post(site.url + "/_dash-update-component", json=payload, timeout=60)


# --- HTTP: login required everywhere ----------------------------------------------------------

def test_every_route_needs_a_login(site: Site) -> None:
    anonymous = requests.Session()
    for path in PAGES:
        response = anonymous.get(site.url + path, allow_redirects=False)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next=")
    for path in ("/vendor/bootstrap.min.css", "/assets/segmint.css"):
        assert anonymous.get(site.url + path, allow_redirects=False).status_code == 302, path
    for path in ("/_dash-layout", "/_dash-dependencies",
                 "/_dash-component-suites/dash/dcc/dash_core_components.js"):
        assert anonymous.get(site.url + path).status_code == 401, path
    assert anonymous.post(site.url + "/_dash-update-component", json={}).status_code == 401
    assert _export_request(anonymous, site).status_code == 401
    assert anonymous.get(site.url + "/healthz").status_code == 200
    form = anonymous.get(site.url + "/login").text
    assert 'name="username"' in form and 'name="password"' in form
    wrong = anonymous.post(site.url + "/login", data={"username": "ann", "password": "nope",
                                                      "csrf_token": _form_token(anonymous, site)},
                           allow_redirects=False)
    assert wrong.status_code == 401 and "segmint_session" not in wrong.cookies
    unknown = anonymous.post(site.url + "/login", data={"username": "eve", "password": "x",
                                                        "csrf_token": _form_token(anonymous,
                                                                                  site)},
                             allow_redirects=False)
    assert unknown.status_code == 401


def test_login_sets_a_safe_session_cookie(site: Site) -> None:
    browser = requests.Session()
    response = browser.post(site.url + "/login",
                            data={"username": "ann", "password": USERS["ann"][1],
                                  "next": "/segments", "csrf_token": _form_token(browser, site)},
                            allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/segments"
    cookie = response.headers["Set-Cookie"]
    assert "segmint_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # dashboard.secure_cookies is false in this config
    other = requests.Session()
    offsite = other.post(site.url + "/login",
                         data={"username": "ann", "password": USERS["ann"][1],
                               "next": "//evil.example/", "csrf_token": _form_token(other, site)},
                         allow_redirects=False)
    assert offsite.headers["Location"] == "/"
    session = _login(site, "ann")
    # Several requests land on both gunicorn workers: the random key is shared between them.
    for _ in range(8):
        assert session.get(site.url + "/_dash-layout").status_code == 200
    session.post(site.url + "/logout", data={"csrf_token": _form_token(session, site)})
    assert session.get(site.url + "/_dash-layout").status_code == 401


def test_export_is_for_analysts_only(site: Site) -> None:
    manager = _login(site, "max")
    assert _export_request(manager, site).status_code == 403
    analyst = _login(site, "ann")
    response = _export_request(analyst, site, "?classes=High+value")
    assert response.status_code == 200, response.text[:500]
    download = response.json()["response"]["segments-export-download"]["data"]
    rows = list(csv.reader(download["content"].splitlines()))
    assert rows[0] == SEGMENT_COLUMNS
    assert len(rows) > 1 and {row[-1] for row in rows[1:]} == {"High value"}
    assert download["filename"].startswith("segments-run2-")


def _rows_request(session: requests.Session, site: Site, query: str, start: int, end: int,
                  **request: Any) -> requests.Response:
    payload = {
        "output": "..segments-customer-table.getRowsResponse...segments-customer-count.children..",
        "outputs": [{"id": "segments-customer-table", "property": "getRowsResponse"},
                    {"id": "segments-customer-count", "property": "children"}],
        "inputs": [{"id": "segments-customer-table", "property": "getRowsRequest",
                    "value": {"startRow": start, "endRow": end, **request}}],
        "state": [{"id": "segments-customer-query", "property": "data", "value": query}],
        "changedPropIds": ["segments-customer-table.getRowsRequest"],
    }
    return session.post(site.url + "/_dash-update-component", json=payload, timeout=60)


def _block(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:500]
    block: dict[str, Any] = response.json()["response"]["segments-customer-table"][
        "getRowsResponse"]
    return block


def test_table_pages_through_every_exported_row(site: Site) -> None:
    """The customer table is paged by the server: its blocks, one after another, are exactly the
    rows of the CSV export (all of them, in the same order), for a filtered selection too."""
    analyst = _login(site, "ann")
    for query in ("", "?classes=High+value", "?since=2025-03-01&until=2025-05-31"):
        download = _export_request(analyst, site, query).json()["response"][
            "segments-export-download"]["data"]
        exported = list(csv.DictReader(download["content"].splitlines()))
        assert exported, query
        shown: list[dict[str, Any]] = []
        while True:
            block = _block(_rows_request(analyst, site, query, len(shown), len(shown) + 100))
            assert block["rowCount"] == len(exported), query
            if not block["rowData"]:
                break
            shown += block["rowData"]
        assert [row["customer_id"] for row in shown] == [row["customer_id"] for row in exported]
        assert list(shown[0]) == SEGMENT_COLUMNS
    # Sorting and filtering run over every row, not only the block sent.
    top = _block(_rows_request(analyst, site, "", 0, 5,
                               sortModel=[{"colId": "monetary", "sort": "desc"}]))["rowData"]
    everyone = _block(_rows_request(analyst, site, "", 0, 500))["rowData"]
    richest = sorted((float(row["monetary"]) for row in everyone), reverse=True)[:5]
    assert [float(row["monetary"]) for row in top] == richest
    vip = _block(_rows_request(analyst, site, "", 0, 500, filterModel={"rfm_segment": {
        "filterType": "text", "type": "equals", "filter": "VIP"}}))
    assert vip["rowCount"] == sum(row["rfm_segment"] == "VIP" for row in everyone) > 0
    # A manager's table ignores filters in the query, like the rest of the page.
    manager = _login(site, "max")
    assert _block(_rows_request(manager, site, "?classes=High+value", 0, 10))["rowCount"] == len(
        everyone)


def test_export_has_the_rows_the_grid_shows(site: Site) -> None:
    """With the table's own column filter and sort set, the CSV export has exactly the rows the
    grid pages through, in its order, and the count says how many of all match (the export had
    every customer of the page, unsorted, and the count stayed at the total)."""
    analyst = _login(site, "ann")
    grid = {"filterModel": {"rfm_segment": {"filterType": "text", "type": "equals",
                                            "filter": "VIP"}},
            "sortModel": [{"colId": "monetary", "sort": "desc"}]}
    download = _export_request(analyst, site, "", {"startRow": 0, "endRow": 100, **grid}).json()[
        "response"]["segments-export-download"]["data"]
    exported = list(csv.DictReader(download["content"].splitlines()))
    assert exported and {row["rfm_segment"] for row in exported} == {"VIP"}
    monetary = [float(row["monetary"]) for row in exported]
    assert monetary == sorted(monetary, reverse=True)
    everyone = _block(_rows_request(analyst, site, "", 0, 500))["rowCount"]
    response = _rows_request(analyst, site, "", 0, 500, **grid)
    shown = _block(response)
    assert [row["customer_id"] for row in exported] == [
        row["customer_id"] for row in shown["rowData"]]
    assert 0 < shown["rowCount"] < everyone
    count = response.json()["response"]["segments-customer-count"]["children"]
    assert count.startswith(f"{shown['rowCount']:,} of {everyone:,} customers"), count


# --- the browser ------------------------------------------------------------------------------

@pytest.fixture
def browser(chromium: None, tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--window-size=1400,1000",
                     f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _browser_login(driver: Any, site: Site, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(site.url + "/segments")
    assert "/login" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(USERS[user][1])
    driver.find_element(By.ID, "login-submit").click()
    _wait(driver, lambda d: d.current_url.endswith("/segments"))
    _wait(driver, lambda d: d.find_elements(By.ID, "role-badge"))


def _open(driver: Any, site: Site, path: str, heading: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(site.url + path)
    _wait(driver, lambda d: any(h.text == heading
                                for h in d.find_elements(By.CSS_SELECTOR, "h2.page-title")))
    # Dash marks a page as loading while callbacks run; wait for the figures to be drawn.
    _wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading]"))
    time.sleep(0.5)


def _errors(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    found = [e.text for e in driver.find_elements(
        By.CSS_SELECTOR, ".dash-fe-error__title, .dash-error-card, #_dash-global-error-container "
        "div.error")]
    body = driver.find_element(By.TAG_NAME, "body").text
    for marker in ("Traceback", "Internal Server Error", "Callback error"):
        if marker in body:
            found.append(marker)
    severe = [entry["message"] for entry in driver.get_log("browser")
              if entry["level"] == "SEVERE" and "favicon" not in entry["message"]]
    return found + severe


def _screenshot(driver: Any, folder: Path, name: str) -> None:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(int(height), 1000), 5000))
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(1400, 1000)


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def _click(driver: Any, element_id: str) -> None:
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    _wait(driver, lambda d: element.is_displayed() and element.is_enabled(), timeout=10)
    try:
        element.click()
    except ElementClickInterceptedException:
        # Headless Chromium sometimes reports a stale layout after a window resize.
        driver.execute_script("arguments[0].click();", element)


def _grid_ids(driver: Any) -> list[str]:
    """Customer ids the paged table shows, top to bottom (empty while a block is loading)."""
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, "#segments-customer-table .ag-center-cols-"
                                 "container .ag-row [col-id='customer_id']")
    rows = sorted((int(cell.find_element(By.XPATH, "..").get_attribute("row-index")), cell.text)
                  for cell in cells)
    return [text for _index, text in rows]


def _shows(driver: Any, page: list[str]) -> bool:
    """True when the table's drawn rows (the grid draws the visible ones) start that page."""
    drawn = _grid_ids(driver)
    return len(drawn) >= 5 and drawn == page[:len(drawn)]


def _set_dates(driver: Any, start: str, end: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    inputs = driver.find_elements(By.CSS_SELECTOR, "#filter-dates input")
    assert len(inputs) == 2
    for field, value in zip(inputs, (start, end), strict=True):
        # Typed as an analyst does: select the date, type the new one, confirm with Enter.
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(value)
        field.send_keys(Keys.ENTER)
        _wait(driver, lambda d, field=field, value=value: field.get_attribute("value") == value,
              timeout=10)
    driver.find_element(By.TAG_NAME, "h2").click()  # close the calendar


def test_analyst_visits_every_page_filters_and_exports(site: Site, browser: Any,
                                                       tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("SEGMINT_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    _browser_login(browser, site, "ann")
    assert _text(browser, "role-badge") == "analyst"
    for path, (heading, graphs) in PAGES.items():
        _open(browser, site, path, heading)
        assert _errors(browser) == [], path
        # Plotly's bundle loads lazily: wait (bounded) for the page's figures to be drawn.
        from selenium.common.exceptions import TimeoutException

        with contextlib.suppress(TimeoutException):  # the assertion below says what is missing
            _wait(browser, lambda d, n=graphs: len(
                d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= n, timeout=30)
        drawn = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
        assert len(drawn) >= graphs, f"{path}: {len(drawn)} figures"
        _screenshot(browser, shots, "analyst" + (path.replace("/", "-") if path != "/"
                                                 else "-overview"))

    # Class and segment pickers only where they apply; the overview says where that is.
    _open(browser, site, "/products", "Products")
    assert browser.find_element(By.ID, "filter-group-pickers").is_displayed()
    assert not browser.find_element(By.ID, "filter-group-note").is_displayed()

    # The date range drives the numbers.
    _open(browser, site, "/", "Overview")
    assert not browser.find_element(By.ID, "filter-group-pickers").is_displayed()
    assert "apply on Products and Segments" in _text(browser, "filter-group-note")
    revenue_all = _text(browser, "kpi-revenue")
    _set_dates(browser, "2025-03-01", "2025-05-31")
    _click(browser, "filter-apply")
    _wait(browser, lambda d: "since=2025-03-01" in d.current_url)
    _wait(browser, lambda d: _text(d, "kpi-revenue") not in ("", revenue_all))
    assert "2025-03-01 – 2025-05-31" in _text(browser, "scope-note")

    # The filters follow the analyst to the segments page, recomputed for the window.
    browser.find_element(By.CSS_SELECTOR, "a[href^='/segments?']").click()
    _wait(browser, lambda d: "/segments?since=2025-03-01" in d.current_url)
    _wait(browser, lambda d: "recomputed" in _text(d, "scope-note"))
    assert _errors(browser) == []
    windowed = _text(browser, "segments-customer-count")
    _screenshot(browser, shots, "analyst-segments-window")
    _open(browser, site, "/segments", "Segments")
    assert _text(browser, "segments-customer-count") != windowed

    # Export the filtered customers as CSV.
    _click(browser, "segments-export")
    _wait(browser, lambda d: [p for p in d.downloads.glob("*.csv")])
    exported = next(browser.downloads.glob("*.csv"))
    with exported.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == SEGMENT_COLUMNS
    assert f"{len(rows) - 1:,} customers" in _text(browser, "segments-customer-count")
    # The table shows the export's rows a page at a time (rows come from the server).
    _wait(browser, lambda d: _shows(d, [row[0] for row in rows[1:21]]))
    next_page = browser.find_element(By.CSS_SELECTOR, "#segments-customer-table "
                                     "[aria-label='Next Page']")
    browser.execute_script("arguments[0].click();", next_page)
    _wait(browser, lambda d: _shows(d, [row[0] for row in rows[21:41]]))

    # Customer look-up on the recommendations page.
    _open(browser, site, "/recommendations", "Recommendations")
    first = rows[1][0]
    lookup = browser.find_element(By.ID, "recs-lookup-input")
    lookup.send_keys(first)
    _click(browser, "recs-lookup-button")
    _wait(browser, lambda d: first in _text(d, "lookup-title"))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Recommendations" in body and "Latest purchases" in body
    assert "+447700" not in body  # phone numbers are masked
    _screenshot(browser, shots, "analyst-lookup")


def test_manager_sees_no_filters_or_export(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _browser_login(browser, site, "max")
    assert _text(browser, "role-badge") == "manager"
    _open(browser, site, "/segments?classes=New", "Segments")
    assert not browser.find_elements(By.ID, "filter-bar")
    assert not browser.find_elements(By.ID, "segments-export")
    assert "Filtered" not in _text(browser, "scope-note")  # managers' URLs do not filter
    assert _errors(browser) == []


def test_fresh_database_shows_how_to_start(empty_site: Site, browser: Any,
                                           tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("SEGMINT_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    _browser_login(browser, empty_site, "ann")
    for path, (heading, _graphs) in PAGES.items():
        _open(browser, empty_site, path, heading)
        assert _errors(browser) == [], path
        body = browser.find_element(By.TAG_NAME, "body").text
        if path in ("/", "/segments", "/strategies", "/recommendations"):
            assert "No segmentation run yet" in body, path
        _screenshot(browser, shots, "empty" + (path.replace("/", "-") if path != "/"
                                               else "-overview"))


def _lookup_request(session: requests.Session, site: Site, customer: str) -> str:
    payload = {
        "output": "recs-lookup-result.children",
        "outputs": {"id": "recs-lookup-result", "property": "children"},
        "inputs": [{"id": "recs-lookup-button", "property": "n_clicks", "value": 1},
                   {"id": "recs-lookup-input", "property": "value", "value": customer}],
        "changedPropIds": ["recs-lookup-button.n_clicks"],
    }
    response = session.post(site.url + "/_dash-update-component", json=payload, timeout=60)
    assert response.status_code == 200, response.text[:500]
    return json.dumps(response.json()["response"]["recs-lookup-result"]["children"])


def test_lookup_shows_an_opt_out_that_came_after_an_earlier_lookup(site: Site) -> None:
    """The look-up is cached per run, but SMS consent, an opt-out (STOP by webhook) and a number
    Twilio refused change between runs: the next look-up shows them."""
    from engine.store.customers import set_opt_out
    from engine.store.tables import CUSTOMERS

    engine = get_engine(f"sqlite:///{site.folder / 'segmint.db'}")
    with engine.connect() as connection:
        customer, phone = connection.execute(
            select(CUSTOMERS.c.customer_id, CUSTOMERS.c.phone)
            .where(CUSTOMERS.c.sms_consent.is_(True), CUSTOMERS.c.phone.is_not(None),
                   CUSTOMERS.c.phone_status == "valid")
            .order_by(CUSTOMERS.c.customer_id).limit(1)).one()
    try:
        session = _login(site, "max")
        before = _lookup_request(session, site, customer)
        assert '"SMS consent"' in before and '"yes"' in before and "opted out" not in before
        set_opt_out(engine=engine, phone=phone, opted_out=True, source="STOP",
                    now=datetime.now(UTC))
        with engine.begin() as connection:
            connection.execute(update(CUSTOMERS).where(CUSTOMERS.c.customer_id == customer)
                               .values(phone_status="invalid"))
        after = _lookup_request(session, site, customer)
        assert '"no: opted out (STOP)"' in after and "(invalid)" in after
    finally:
        with engine.begin() as connection:
            connection.execute(update(CUSTOMERS).where(CUSTOMERS.c.customer_id == customer)
                               .values(phone_status="valid"))
        set_opt_out(engine=engine, phone=phone, opted_out=False, source="START",
                    now=datetime.now(UTC))
        engine.dispose()


def test_login_never_lands_on_another_site_and_the_logout_button_signs_out(
        site: Site, browser: Any) -> None:
    """Issue 19 items 7 and 8 in Chromium: before, /login?next=%2F%09%2Fevil.example%2F sent the
    browser to evil.example after signing in (Chromium drops the tab: //evil.example/). The
    navbar's Log out is a POST form with the CSRF token; afterwards pages ask for a login again."""
    from urllib.parse import urlsplit

    from selenium.webdriver.common.by import By

    browser.get(site.url + "/login?next=%2F%09%2Fevil.example%2F")
    browser.find_element(By.NAME, "username").send_keys("ann")
    browser.find_element(By.NAME, "password").send_keys(USERS["ann"][1])
    browser.find_element(By.ID, "login-submit").click()
    _wait(browser, lambda d: "/login" not in d.current_url)
    assert urlsplit(browser.current_url).netloc == urlsplit(site.url).netloc, browser.current_url
    _wait(browser, lambda d: d.find_elements(By.ID, "role-badge"))
    _click(browser, "logout-link")
    _wait(browser, lambda d: "/login" in d.current_url)
    browser.get(site.url + "/segments")
    _wait(browser, lambda d: "/login" in d.current_url)
    assert _errors(browser) == []


# --- start-up: the server listens first, the cache warms behind it ----------------------------

def _segments_view(driver: Any, site: Site) -> tuple[str, str]:
    _open(driver, site, "/segments", "Segments")
    _wait(driver, lambda d: _text(d, "segments-customer-count"))
    assert _errors(driver) == []
    return _text(driver, "scope-note"), _text(driver, "segments-customer-count")


def test_pages_answer_while_the_cache_warms_up(site: Site, browser: Any) -> None:
    """`segmint serve` listens before its cache is warm, and a page never waits for another
    page's warm-up. The warm-up (forked once the socket listens) is held on a value only the
    Overview and Products need (the count of lines loaded, which tells whether the published
    run's own sales figures are current): this test takes that value's computing lock in the
    server's shared cache before the start, as a slow query would hold it. /login and the
    Segments page answer, with the numbers of the already warm server on the same store, while
    the log shows the warm-up still running; once the lock goes, the warm-up finishes and the
    Overview answers."""
    _browser_login(browser, site, "ann")
    warm_view = _segments_view(browser, site)

    folder = site.folder
    config = folder / "config-warming.toml"
    config.write_text('[dashboard]\nworkers = 2\ncache_dir = "var/cache/warming"\n')
    settings = load_settings(config, environ={
        "SEGMINT_DATABASE_URL": f"sqlite:///{folder / 'segmint.db'}"})
    shared = flask_server(settings, "test")
    with shared.test_request_context("/"):
        lock = context.lock_key(context.cache_key("lines-seen"))
        assert context.cache().add(lock, True, timeout=600)
    servers = _serve(folder, config.name)
    warming = next(servers)
    try:
        def log() -> str:
            return warming.log.read_text()
        _wait(browser, lambda _d: "dashboard cache warm-up started" in log())
        assert requests.get(warming.url + "/login", timeout=10).status_code == 200
        _browser_login(browser, warming, "ann")
        assert _segments_view(browser, warming) == warm_view
        assert "dashboard cache warmed" not in log(), log()[-2000:]

        with shared.test_request_context("/"):
            context.cache().delete(lock)
        _wait(browser, lambda _d: "dashboard cache warmed" in log())
        _open(browser, warming, "/", "Overview")
        assert _errors(browser) == []
    finally:
        servers.close()
    assert "Traceback" not in warming.log.read_text()


def test_new_data_while_serving_warms_the_default_views_again(site: Site, tmp_path: Path) -> None:
    """A load (or a new run) while `segmint serve` runs changes the data version: the warmer
    sees it within [dashboard] rewarm_seconds and warms the default views again, so the first
    visitor after the nightly job does not compute them. Stopping the server ends the warmer
    and its warm-ups."""
    import shutil

    shutil.copy(site.folder / "segmint.db", tmp_path / "segmint.db")
    (tmp_path / "config.toml").write_text("[dashboard]\nworkers = 1\nrewarm_seconds = 1\n")
    settings = load_settings(tmp_path / "config.toml", environ={
        "SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'segmint.db'}"})
    shared = flask_server(settings, "test")
    servers = _serve(tmp_path)
    serving = next(servers)

    def log() -> str:
        return serving.log.read_text()

    def until(condition: Any, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, log()[-3000:]
            time.sleep(0.2)
    try:
        until(lambda: "dashboard cache warmed" in log())
        with shared.test_request_context("/"):
            assert context.cache().get(context.cache_key("new-customers")) is not None
            before = context.data_version()
        with (site.folder / "data" / "transactions.csv").open(newline="") as handle:
            reader = csv.DictReader(handle)
            line, header = next(reader), list(reader.fieldnames or [])
        late = tmp_path / "late.csv"
        with late.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerow({**line, "invoice": "999999", "timestamp": "2025-12-20 10:00:00"})
        _cli(tmp_path, "ingest", str(late))
        until(lambda: log().count("dashboard cache warmed") == 2)
        assert "new data (version" in log()
        with shared.test_request_context("/"):
            assert context.data_version() != before
            assert context.cache().get(context.cache_key("new-customers")) is not None
    finally:
        servers.close()
    def pids(said: str) -> list[int]:
        return [int(part.split(")")[0]) for part in log().split(said + " (pid ")[1:]]
    assert len(pids("warm-up started")) == 2 and len(pids("warmer started")) == 1
    with pytest.raises(ProcessLookupError):  # the warmer ended with the server
        os.kill(pids("warmer started")[0], 0)
    assert "Traceback" not in log()


def _platform_font(driver: Any, selector: str) -> str:
    """The font Chromium really drew the element's text with (DevTools' CSS domain), not the
    font-family list it was asked for."""
    driver.execute_cdp_cmd("DOM.enable", {})
    driver.execute_cdp_cmd("CSS.enable", {})
    root = driver.execute_cdp_cmd("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    node = driver.execute_cdp_cmd("DOM.querySelector", {"nodeId": root,
                                                        "selector": selector})["nodeId"]
    fonts = driver.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    assert fonts, selector
    return str(max(fonts, key=lambda font: font["glyphCount"])["familyName"])


def test_grid_cells_use_the_grid_theme_font(site: Site, browser: Any) -> None:
    """The AG Grid tables draw their cells in the grid theme's font, not in the browser's serif
    default (the font Chromium uses for `font-family: serif`)."""
    from selenium.webdriver.common.by import By

    _browser_login(browser, site, "ann")
    _open(browser, site, "/segments", "Segments")
    cell = "#segments-customer-table .ag-center-cols-container .ag-cell"
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, cell))
    browser.execute_script(
        "const probe = document.createElement('span'); probe.id = 'serif-probe';"
        "probe.style.fontFamily = 'serif'; probe.textContent = 'C0001 1,234.50';"
        "document.body.appendChild(probe);")
    serif = _platform_font(browser, "#serif-probe")
    family = browser.execute_script("return getComputedStyle(arguments[0]).fontFamily",
                                    browser.find_element(By.CSS_SELECTOR, cell))
    assert family.rstrip().endswith("sans-serif"), family
    assert _platform_font(browser, cell) != serif, family
