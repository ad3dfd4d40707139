"""Login, sessions and roles for the dashboard's Flask server.

The login form is plain HTML (no Dash, no static files) so it works before anything else is
allowed. A before_request hook guards every other route, including Dash's JSON endpoints and
component bundles. Sessions are Flask's signed cookies: nothing about a user lives in a worker.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from html import escape
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Flask, Response, abort, redirect, request, session
from flask_wtf.csrf import generate_csrf
from werkzeug.security import check_password_hash, generate_password_hash

from engine.store.users import end_sessions, find_user, session_version

from . import context

log = logging.getLogger(__name__)

ANALYST = "analyst"
MANAGER = "manager"
PASSWORD_METHOD = "scrypt"
OPEN_PREFIXES = ("/webhooks/twilio/",)
OPEN_PATHS = ("/login", "/logout", "/healthz", "/favicon.ico")
# Dash answers any other GET with its page shell (and its library versions): these paths only
# take a POST, and nothing else under the open prefixes exists.
POST_ONLY_PATHS = ("/logout", "/webhooks/twilio/status", "/webhooks/twilio/inbound")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def current_user() -> str | None:
    user = session.get("user")
    return user if isinstance(user, str) else None


def current_role() -> str | None:
    role = session.get("role")
    return role if role in (ANALYST, MANAGER) else None


def is_analyst() -> bool:
    return current_user() is not None and current_role() == ANALYST


def require_analyst() -> None:
    """Server-side refusal of filter and export requests from anyone but an analyst."""
    if not is_analyst():
        log.warning("refused analyst-only request from %r (%s)", current_user(), current_role())
        abort(403)


def configure_sessions(server: Flask, *, secret_key: str, secure: bool, hours: int) -> None:
    server.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="segmint_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=hours),
    )
    server.before_request(_require_login)


# Dash's JavaScript bundles and the stylesheets: dozens per page load.
STATIC_PREFIXES = ("/_dash-component-suites/", "/assets/")


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _session_is_current() -> bool:
    """The cookie's session version is still the account's: logout, a role or password change
    and `segmint users revoke` raise it, which ends every session issued before."""
    user = current_user()
    if user is None:
        return False
    version = session_version(engine=context.engine(), username=user)
    if version is not None and session.get("version") == version:
        return True
    log.info("ended session of %r refused (logged out, changed or revoked)", user)
    session.clear()
    return False


def _refuse_stray_requests() -> Any:
    path = request.path
    if path in POST_ONLY_PATHS and request.method != "POST":
        return Response("method not allowed\n", status=405, mimetype="text/plain",
                        headers={"Allow": "POST"})
    if path == "/favicon.ico" or (path.startswith(OPEN_PREFIXES) and path not in POST_ONLY_PATHS):
        return Response("not found\n", status=404, mimetype="text/plain")
    return None


def _require_login() -> Any:
    refused = _refuse_stray_requests()
    if refused is not None:
        return refused
    if _is_open(request.path):
        return None
    if request.path.startswith(STATIC_PREFIXES) and current_user() is not None:
        return None  # library code, not data: the signed cookie is enough, no query per bundle
    if _session_is_current():
        return None
    wants_page = request.method == "GET" and not request.path.startswith("/_")
    if wants_page:
        target = request.full_path.rstrip("?") if request.query_string else request.path
        return redirect(f"/login?next={_quote(target)}")
    return Response('{"error": "login required"}', status=401, mimetype="application/json")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


def safe_next(value: str | None) -> str:
    """A same-site path to go to after login, else "/". Browsers drop tabs and newlines from a
    URL and read a backslash as a slash, so `/\t/evil.example` or `/\\evil.example` would leave
    the site: the value is normalised the way a browser would before it is judged."""
    if not value:
        return "/"
    cleaned = "".join(ch for ch in value if ch >= " " and ch != "\x7f").replace("\\", "/")
    cleaned = cleaned.strip()
    parts = urlsplit(cleaned)
    if (parts.scheme or parts.netloc or not cleaned.startswith("/")
            or cleaned.startswith("//")):
        return "/"
    return urlunsplit(("", "", parts.path, parts.query, ""))


def create_blueprint(throttle: Callable[[Any], Any] | None = None) -> Blueprint:
    """Login, logout and /healthz; throttle wraps the login view (security.limit_login)."""
    blueprint = Blueprint("segmint_auth", __name__)
    # Checked when the user does not exist, so a wrong name costs as long as a wrong password.
    dummy_hash = hash_password(secrets.token_urlsafe(16))

    def login() -> Any:
        next_url = safe_next(request.values.get("next"))
        if request.method == "GET":
            return login_page(next_url, error=None)
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user = find_user(engine=context.engine(), username=username) if username else None
        valid = check_password_hash(user.password_hash if user else dummy_hash, password)
        if user is None or not valid or user.revoked:
            log.info("failed dashboard login for %r", username)
            return login_page(next_url, error="Unknown user or wrong password."), 401
        session.clear()
        session.permanent = True
        session["user"] = user.username
        session["role"] = user.role
        session["version"] = user.session_version
        log.info("dashboard login: %s (%s)", user.username, user.role)
        return redirect(next_url)

    blueprint.add_url_rule("/login", view_func=throttle(login) if throttle else login,
                           methods=["GET", "POST"])

    @blueprint.app_errorhandler(429)
    def throttled(error: Any) -> Any:
        if request.path != "/login":
            return Response('{"error": "too many requests"}', status=429,
                            mimetype="application/json")
        message = ("Too many failed sign-ins. Wait a while before trying again "
                   f"({getattr(error, 'description', '')}).")
        return login_page(safe_next(request.values.get("next")), error=message), 429

    @blueprint.post("/logout")
    def logout() -> Any:
        user = current_user()
        if user is not None and _session_is_current():
            end_sessions(engine=context.engine(), username=user)
            log.info("dashboard logout: %s (every session of the account ended)", user)
        session.clear()
        return redirect("/login")

    @blueprint.route("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return blueprint


def login_page(next_url: str, *, error: str | None) -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Segmint · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: #f5f7fb;
       display: flex; align-items: center; justify-content: center; min-height: 100vh; margin: 0; }}
form {{ background: #fff; padding: 2rem 2.2rem; border-radius: 10px; width: 320px;
       box-shadow: 0 4px 18px rgba(20, 40, 80, .12); }}
h1 {{ font-size: 1.4rem; margin: 0 0 .3rem; color: #12263f; }}
p.lead {{ color: #6c757d; margin: 0 0 1.2rem; font-size: .9rem; }}
label {{ display: block; font-size: .85rem; color: #344050; margin: .8rem 0 .25rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .55rem .7rem; border: 1px solid #ccd3dd;
        border-radius: 6px; font-size: 1rem; }}
button {{ margin-top: 1.3rem; width: 100%; padding: .6rem; border: 0; border-radius: 6px;
         background: #2c7be5; color: #fff; font-size: 1rem; cursor: pointer; }}
.error {{ color: #b02a37; background: #fbe5e7; padding: .5rem .7rem; border-radius: 6px; }}
</style></head>
<body><form method="post" action="/login">
<h1>Segmint</h1><p class="lead">Sign in to the segments dashboard</p>
{message}
<input type="hidden" name="csrf_token" value="{escape(generate_csrf())}">
<input type="hidden" name="next" value="{escape(next_url)}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login-submit" type="submit">Sign in</button>
</form></body></html>"""
