"""Cross-site defences of the dashboard's Flask server: CSRF tokens, Origin/Referer checks,
framing and content-security headers.

- Every state-changing request (POST, PUT, PATCH, DELETE) needs a CSRF token (Flask-WTF's
  CSRFProtect): the login and logout forms carry it as the hidden field `csrf_token`; Dash's own
  callback POSTs send it in the X-CSRFToken header, which dash-renderer fills from the
  `_csrf_token` cookie this module sets on every page (readable by scripts on this site only, and
  worthless without the session cookie it is tied to). Twilio's webhooks are exempt: they are
  signed (notifications/webhooks.py).
- A state-changing request whose Origin (or, without one, Referer) names another host is refused
  with 403 before anything else looks at it, token or not.
- Failed sign-ins are throttled per user name and per client address (Flask-Limiter, moving
  windows of growing length: a few a minute, more an hour, a day's worth), counted in Redis so
  every gunicorn worker sees the same counts; only failures count, and past a limit even the
  right password waits (429 with Retry-After). Each refusal is logged.
- Every answer says X-Frame-Options: DENY and carries a Content-Security-Policy: scripts only from
  this site (Dash's one inline script by its hash), no framing (frame-ancestors 'none'), forms
  post only here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf

from engine.settings import DashboardSettings

log = logging.getLogger(__name__)

CSRF_COOKIE = "_csrf_token"  # the name dash-renderer reads into its X-CSRFToken header
CSRF_EXTENSION = "segmint.csrf"
CSP_KEY = "SEGMINT_CONTENT_SECURITY_POLICY"  # a callable giving the policy (Dash adds hashes)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXEMPT_PREFIXES = ("/webhooks/twilio/",)


def content_security_policy(inline_script_hashes: Iterable[str] = ()) -> str:
    """The policy every answer carries; Dash's inline scripts are allowed by their hashes.
    Styles may be inline: Plotly and AG Grid write <style> elements at run time."""
    scripts = " ".join(["'self'", *inline_script_hashes])
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def init_security(server: Flask, *, secure: bool) -> CSRFProtect:
    """CSRF protection, the Origin check and the headers on `server` (after the login check is
    registered, so an anonymous request still gets its 401 first)."""
    server.config.update(
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session, which ends on its own terms
        WTF_CSRF_SSL_STRICT=True,  # on HTTPS, Flask-WTF also wants a same-site Referer
    )
    server.config.setdefault(CSP_KEY, content_security_policy)
    server.before_request(_check_origin)
    csrf = CSRFProtect(server)
    server.extensions[CSRF_EXTENSION] = csrf

    @server.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError) -> Any:
        log.warning("refused %s %s without a valid CSRF token: %s", request.method, request.path,
                    error.description)
        if request.path == "/login":
            from .auth import login_page

            return login_page("/", error="The form expired; please sign in again."), 400
        return Response(f'{{"error": "{error.description}"}}', status=400,
                        mimetype="application/json")

    @server.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", server.config[CSP_KEY]())
        if _is_page(response):
            # A page load refreshes the token dash-renderer sends with each callback.
            response.set_cookie(CSRF_COOKIE, generate_csrf(), secure=secure, httponly=False,
                                samesite="Strict")
        return response

    return csrf


def login_limiter(server: Flask, dashboard: DashboardSettings) -> Limiter:
    """The limiter of the login view (init_app'd on server; decorate with limit_login)."""
    limiter = Limiter(
        get_remote_address,
        app=server,
        storage_uri=dashboard.rate_limit_storage,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
        strategy="moving-window",
        in_memory_fallback_enabled=True,
        key_prefix="segmint-login",
        headers_enabled=True,
        on_breach=_log_breach,
    )
    return limiter


def limit_login(limiter: Limiter, dashboard: DashboardSettings, view: Any) -> Any:
    """The login view with both limits; only failed sign-ins (401) count."""
    failed = _failed_login
    per_address = limiter.limit(dashboard.login_limits_per_address, key_func=get_remote_address,
                                methods=["POST"], deduct_when=failed, scope="address")
    per_user = limiter.limit(dashboard.login_limits_per_user, key_func=_login_name,
                             methods=["POST"], deduct_when=failed, scope="user")
    return per_user(per_address(view))


def _failed_login(response: Response) -> bool:
    return response.status_code == 401


def _login_name() -> str:
    """The user name a sign-in is for, as the accounts compare it (one counter per account)."""
    return request.form.get("username", "").strip()[:64] or "(none)"


def _log_breach(limit: RequestLimit) -> Response | None:
    log.warning("sign-in throttled for %r from %s: more failures than %s", _login_name(),
                get_remote_address(), limit.limit)
    return None


def _is_page(response: Response) -> bool:
    return (request.method == "GET" and response.status_code == 200
            and response.mimetype == "text/html" and request.path != "/login")


def _check_origin() -> Any:
    """403 for a state-changing request that says it comes from another site."""
    if request.method not in UNSAFE_METHODS or request.path.startswith(EXEMPT_PREFIXES):
        return None
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if not claimed:
        return None  # older clients send neither: the CSRF token still has to match
    host = urlsplit(claimed).netloc if claimed != "null" else "null"
    if host == request.host:
        return None
    log.warning("refused cross-site %s %s (Origin/Referer %r, host %r)", request.method,
                request.path, claimed[:200], request.host)
    return Response('{"error": "cross-site request refused"}', status=403,
                    mimetype="application/json")
