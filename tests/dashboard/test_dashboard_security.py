"""The dashboard's Flask server as an attacker meets it (issue 19): redirects after login, sessions
that must end, login CSRF, framing, brute force, stray GETs. The real app from create_server on a
real SQLite file, driven by Flask's test client (the browser-only parts are in
test_dashboard_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from flask.testing import FlaskClient

from dashboard.app import create_server
from dashboard.auth import hash_password, safe_next
from engine.settings import Settings
from engine.store import get_engine, init_db
from engine.store.users import save_user
from tests.conftest import make_settings, run_segmint

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


# --- item 6: sessions end on logout, role or password change, revocation ----------------------

def _signed_in(client: FlaskClient, user: str) -> str:
    assert login(client, user).status_code == 302
    assert client.get("/_dash-layout").status_code == 200
    cookie = client.get_cookie("segmint_session")
    assert cookie is not None
    return cookie.value


def _replayed(server: Any, cookie: str) -> int:
    """What a saved copy of the cookie gets now, from another client."""
    other: FlaskClient = server.test_client()
    other.set_cookie("segmint_session", cookie)
    status: int = other.get("/_dash-layout").status_code
    return status


def test_a_saved_cookie_stops_working_after_logout(server: Any, client: FlaskClient) -> None:
    """Before: /logout only cleared the browser's copy; a saved cookie kept working."""
    cookie = _signed_in(client, "ann")
    assert _replayed(server, cookie) == 200
    token = csrf_token(client, "/login")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/_dash-layout").status_code == 401
    assert _replayed(server, cookie) == 401


def test_logout_is_post_only(client: FlaskClient) -> None:
    _signed_in(client, "ann")
    assert client.get("/logout").status_code == 405
    assert client.get("/_dash-layout").status_code == 200


@pytest.mark.parametrize("change", ["role", "password"])
def test_a_role_or_password_change_ends_sessions(server: Any, client: FlaskClient,
                                                 change: str) -> None:
    """Before: a manager demoted (or whose password was reset) kept the old cookie's role."""
    engine = server.config["SEGMINT_TEST_ENGINE"]
    cookie = _signed_in(client, "max")
    role = "analyst" if change == "role" else "manager"
    password = "new-manager-pw" if change == "password" else PASSWORDS["max"]
    try:
        save_user(engine=engine, username="max", password_hash=hash_password(password),
                  role=role)
        assert _replayed(server, cookie) == 401
        assert client.get("/_dash-layout").status_code == 401
        assert login(client, "max", password=password).status_code == 302
        assert client.get("/_dash-layout").status_code == 200
    finally:
        save_user(engine=engine, username="max", password_hash=hash_password(PASSWORDS["max"]),
                  role="manager")


def test_users_revoke_ends_sessions_and_refuses_logins(server: Any, client: FlaskClient,
                                                       tmp_path: Path) -> None:
    """`segmint users revoke NAME` (the real console script) ends the account's sessions and
    refuses its logins until `users add` sets a new password."""
    engine = server.config["SEGMINT_TEST_ENGINE"]
    save_user(engine=engine, username="eve", password_hash=hash_password("eve-analyst-pw"),
              role="analyst")
    PASSWORDS["eve"] = "eve-analyst-pw"
    cookie = _signed_in(client, "eve")
    env = {"SEGMINT_DATABASE_URL": str(engine.url)}
    done = run_segmint("users", "revoke", "eve", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "user eve revoked (sessions ended, logins refused)"
    assert _replayed(server, cookie) == 401
    assert login(client, "eve").status_code == 401
    listed = run_segmint("users", "list", cwd=tmp_path, env=env)
    assert "eve\tanalyst\trevoked" in listed.stdout.splitlines()
    missing = run_segmint("users", "revoke", "nobody", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no dashboard user 'nobody'"
    again = run_segmint("users", "add", "eve", "--role", "analyst", cwd=tmp_path, env=env,
                        input="eve-new-pw-1\n")
    assert again.returncode == 0
    assert login(client, "eve", password="eve-new-pw-1").status_code == 302


# --- small: stray GETs get Dash's page shell ---------------------------------------------------

@pytest.mark.parametrize("path", ["/webhooks/twilio/status", "/webhooks/twilio/inbound",
                                  "/logout"])
def test_get_on_post_only_paths_is_405(client: FlaskClient, path: str) -> None:
    """Before: 200 with Dash's page shell (library versions included), no login needed."""
    response = client.get(path)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert "dash" not in response.get_data(as_text=True).lower()


@pytest.mark.parametrize("path", ["/favicon.ico", "/webhooks/twilio/other"])
def test_favicon_and_unknown_webhook_paths_are_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "dash" not in response.get_data(as_text=True).lower()
