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
from engine.settings import Settings, load_settings
from engine.store import get_engine, init_db
from engine.store.users import save_user
from tests.conftest import form_token, run_segmint

TWILIO_TOKEN = "test-twilio-token"
PASSWORDS = {"ann": "ann-analyst-pw", "max": "max-manager-pw"}
ROLES = {"ann": "analyst", "max": "manager"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("security")
    (folder / "config.toml").write_text("")
    settings: Settings = load_settings(folder / "config.toml", environ={
        "SEGMINT_DATABASE_URL": f"sqlite:///{folder / 'segmint.db'}",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN})
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
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
    return form_token(client.get(path).get_data(as_text=True))


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


# --- item 8: login CSRF, Origin checks, framing ------------------------------------------------

def test_login_without_the_forms_token_is_refused(client: FlaskClient) -> None:
    """Before: another site's auto-submitted form signed the victim in as the attacker."""
    attack = client.post("/login", data={"username": "ann", "password": PASSWORDS["ann"]})
    assert attack.status_code == 400
    assert client.get_cookie("segmint_session") is None or client.get(
        "/_dash-layout").status_code == 401
    # A token from another browser's session does not do either.
    stolen = csrf_token(client.application.test_client())
    forged = client.post("/login", data={"username": "ann", "password": PASSWORDS["ann"],
                                         "csrf_token": stolen})
    assert forged.status_code == 400
    assert client.get("/_dash-layout").status_code == 401


def test_a_plain_form_post_with_the_pages_token_signs_in(client: FlaskClient) -> None:
    """The contract outside checks rely on: GET /login, post username, password and the hidden
    csrf_token back with the cookie it set; success sets the session cookie."""
    form = {"username": "ann", "password": PASSWORDS["ann"], "csrf_token": csrf_token(client)}
    response = client.post("/login", data=form)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "segmint_session=" in response.headers["Set-Cookie"]
    assert client.get("/_dash-layout").status_code == 200


def test_a_cross_site_origin_is_refused_even_with_a_token(client: FlaskClient) -> None:
    form = {"username": "ann", "password": PASSWORDS["ann"], "csrf_token": csrf_token(client)}
    for header in ({"Origin": "http://evil.example"},
                   {"Referer": "http://evil.example/login.html"}, {"Origin": "null"}):
        refused = client.post("/login", data=form, headers=header)
        assert refused.status_code == 403, header
    same = client.post("/login", data=form, headers={"Origin": "http://localhost"})
    assert same.status_code == 302


def _callback(client: FlaskClient, headers: dict[str, str]) -> int:
    """The shell's show_filter_bar callback, as dash-renderer posts it."""
    outputs = [{"id": name, "property": "style"}
               for name in ("filter-bar", "filter-group-pickers", "filter-group-note")]
    payload = {"output": "..filter-bar.style...filter-group-pickers.style..."
                         "filter-group-note.style..",
               "outputs": outputs,
               "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/"}],
               "changedPropIds": ["_pages_location.pathname"]}
    status: int = client.post("/_dash-update-component", json=payload,
                              headers=headers).status_code
    return status


def test_dash_callbacks_need_the_token_dash_renderer_sends(client: FlaskClient) -> None:
    """dash-renderer copies the _csrf_token cookie into X-CSRFToken on each callback POST."""
    assert login(client, "ann").status_code == 302
    assert client.get("/").status_code == 200
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None and cookie.value
    assert _callback(client, {}) == 400
    assert _callback(client, {"X-CSRFToken": "forged"}) == 400
    assert _callback(client, {"X-CSRFToken": cookie.value}) == 200


def test_every_answer_forbids_framing_and_carries_a_policy(client: FlaskClient) -> None:
    """Before: no X-Frame-Options and no Content-Security-Policy (clickjacking of the login)."""
    pages = [client.get("/login")]
    login(client, "ann")
    pages.append(client.get("/"))
    for response in pages:
        assert response.headers["X-Frame-Options"] == "DENY"
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_the_policy_allows_every_inline_script_of_the_page_shell(client: FlaskClient) -> None:
    """Dash's inline scripts (its renderer, the pages' clientside callbacks) run under the policy
    by their hashes; nothing else inline does (the browser test checks the console too)."""
    import base64
    import hashlib

    login(client, "ann")
    response = client.get("/segments")
    page = re.sub(r"<!--.*?-->", "", response.get_data(as_text=True), flags=re.S)
    policy = response.headers["Content-Security-Policy"]
    inline = [body for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", page,
                                                      re.S)
              if "src=" not in attributes and "application/json" not in attributes]
    assert len(inline) >= 2
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy, body[:80]


def test_signed_webhooks_need_no_csrf_token(client: FlaskClient) -> None:
    """Twilio's POSTs carry a signature, not a CSRF token: they still work on the full server."""
    from twilio.request_validator import RequestValidator

    url = "http://localhost/webhooks/twilio/inbound"
    form = {"From": "+447400123401", "Body": "HELP", "MessageSid": "SM" + "9" * 32}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    signed = client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert signed.status_code == 200 and "<Message>" in signed.get_data(as_text=True)
    assert client.post(url, data=form).status_code == 403
