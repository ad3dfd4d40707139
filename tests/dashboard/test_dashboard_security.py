"""The dashboard's Flask server as an attacker meets it (issue 19): redirects after login, sessions
that must end, login CSRF, framing, brute force, stray GETs. The real app from create_server on a
real SQLite file, driven by Flask's test client (the browser-only parts are in
test_dashboard_browser.py)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from dashboard.app import create_server
from dashboard.auth import hash_password, safe_next
from engine.settings import Settings
from engine.store import get_engine, init_db
from engine.store.users import save_user
from tests.conftest import make_settings

PASSWORDS = {"ann": "ann-analyst-pw", "max": "max-manager-pw"}
ROLES = {"ann": "analyst", "max": "manager"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("security")
    settings: Settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}")
    engine = get_engine(settings.database_url)
    init_db(engine)
    for name, password in PASSWORDS.items():
        save_user(engine=engine, username=name, password_hash=hash_password(password),
                  role=ROLES[name])
    app = create_server(settings, secret_key="test-secret")
    app.config["SEGMINT_TEST_ENGINE"] = engine
    yield app
    engine.dispose()


@pytest.fixture
def client(server: Any) -> FlaskClient:
    client: FlaskClient = server.test_client()
    return client


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The token a browser would submit: the hidden field of the login form (GET first)."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    return found.group(1) if found else ""


def login(client: FlaskClient, user: str, *, password: str | None = None,
          next_url: str | None = None) -> Any:
    form = {"username": user, "password": password or PASSWORDS[user],
            "csrf_token": csrf_token(client)}
    if next_url is not None:
        form["next"] = next_url
    return client.post("/login", data=form)


# --- item 7: open redirect ---------------------------------------------------------------------

OFFSITE = ["//evil.example/", "/\t/evil.example/", "/%09/evil.example/".replace("%09", "\t"),
           "/\\evil.example/", "\\\\evil.example", "/\n/evil.example", " //evil.example",
           "https://evil.example/", "http:evil.example", "javascript:alert(1)",
           "/\r\n/evil.example", "\x00//evil.example", "////evil.example"]


def browser_host(location: str) -> str:
    """Where a browser goes for this Location on http://site.test/: it drops tabs and newlines
    anywhere, leading and trailing controls and spaces, and reads backslashes as slashes (WHATWG
    URL parsing)."""
    cleaned = re.sub(r"[\t\n\r]", "", location.strip("\x00\x01\x1f ")).replace("\\", "/")
    return urlsplit(urljoin("http://site.test/login", cleaned)).netloc


@pytest.mark.parametrize("target", OFFSITE)
def test_next_never_leaves_the_site(target: str) -> None:
    """Before: '/\t/evil.example/' passed the check and was answered as the Location, which a
    browser reads as //evil.example/ (another site)."""
    assert browser_host(safe_next(target)) == "site.test", safe_next(target)


def test_same_site_next_is_kept() -> None:
    assert safe_next("/segments?since=2025-01-01&classes=High+value") == (
        "/segments?since=2025-01-01&classes=High+value")
    assert safe_next(None) == "/" and safe_next("") == "/"


def test_login_with_a_tab_in_next_redirects_on_site(client: FlaskClient) -> None:
    """Before: /login?next=%2F%09%2Fevil.example%2F answered Location: //evil.example/."""
    page = client.get("/login?next=%2F%09%2Fevil.example%2F").get_data(as_text=True)
    assert 'name="next" value="/"' in page
    response = login(client, "ann", next_url="/\t/evil.example/")
    assert response.status_code == 302
    assert browser_host(response.headers["Location"]) == "site.test", response.headers["Location"]
