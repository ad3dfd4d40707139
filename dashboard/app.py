"""The dashboard's shell and factories: `create_app(settings)` (Dash) and `create_server(settings)`
(its Flask server, what gunicorn serves). Nothing is built at import time.

The shell is a navbar from `dash.page_registry`, the analysts' filter bar and
`dash.page_container`; every page lives in dashboard/pages/ and reads its data per visit.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate
from flask import Flask, send_from_directory
from flask_caching import Cache
from flask_wtf.csrf import generate_csrf

from engine.settings import Settings
from engine.store import get_engine

from . import auth, context, frames, ids, security
from .filters import Filters, from_search, ignored_message, parse_date
from .paging import GridRequestError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
BOOTSTRAP_CSS = "/vendor/bootstrap.min.css"
# Pages that read the analysts' filters; elsewhere the filter bar is hidden.
FILTERED_PAGES = ("/", "/products", "/segments")
# Pages whose figures can be limited to classes and RFM segments (the overview counts every
# line, customers or not): elsewhere those pickers are hidden and a note says where they apply.
GROUP_FILTERED_PAGES = ("/products", "/segments")
GROUP_FILTER_NOTE = ("Class and segment filters apply on Products and Segments; this page counts "
                     "every transaction line.")


def _bootstrap_dir() -> Path:
    import flask_bootstrap

    return Path(flask_bootstrap.__file__).resolve().parent / "static" / "bootstrap5" / "css"


def flask_server(settings: Settings, secret_key: str | None) -> Flask:
    """The Flask server alone: sessions and login, cache, webhooks (no Dash yet)."""
    server = Flask("segmint.dashboard")
    key = secret_key or settings.secrets.segmint_secret_key
    if not key:
        key = secrets.token_urlsafe(32)
        log.warning("SEGMINT_SECRET_KEY is not set: sessions use a random key and end when the "
                    "dashboard restarts")
    server.config[context.SETTINGS_KEY] = settings
    auth.configure_sessions(server, secret_key=key, secure=settings.dashboard.secure_cookies,
                            hours=settings.dashboard.session_hours)
    security.init_security(server, secure=settings.dashboard.secure_cookies)
    cache_dir = settings.path(settings.dashboard.cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = Cache(config={"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(cache_dir),
                          "CACHE_DEFAULT_TIMEOUT": settings.dashboard.cache_seconds,
                          "CACHE_THRESHOLD": 2000})
    cache.init_app(server)
    context.install_cache(server, cache)
    limiter = security.login_limiter(server, settings.dashboard)
    server.register_blueprint(auth.create_blueprint(
        lambda view: security.limit_login(limiter, settings.dashboard, view)))

    @server.route(BOOTSTRAP_CSS)
    def bootstrap_css() -> Any:
        return send_from_directory(_bootstrap_dir(), "bootstrap.min.css", max_age=86400)

    @server.errorhandler(GridRequestError)
    def bad_grid_request(error: GridRequestError) -> Any:
        return {"error": str(error)}, 400

    _register_webhooks(server, settings)
    return server


def _register_webhooks(server: Flask, settings: Settings) -> None:
    """Twilio status and inbound-SMS webhooks (they check X-Twilio-Signature themselves)."""
    from notifications.webhooks import create_blueprint

    engine = get_engine(settings.database_url, settings.database.echo)
    blueprint = create_blueprint(settings, engine)
    server.extensions[security.CSRF_EXTENSION].exempt(blueprint)  # signed by Twilio instead
    server.register_blueprint(blueprint)


def create_app(settings: Settings, *, secret_key: str | None = None) -> Dash:
    """The Dash app on a fresh Flask server (login, cache, webhooks registered)."""
    server = flask_server(settings, secret_key)
    app = Dash(
        __name__,
        server=server,
        use_pages=True,
        pages_folder=str(PACKAGE_DIR / "pages"),
        assets_folder=str(PACKAGE_DIR / "assets"),
        external_stylesheets=[BOOTSTRAP_CSS],
        suppress_callback_exceptions=True,
        title="Segmint",
        # Dash documents None as "leave the tab title alone"; its generated stub says str only.
        update_title=None,  # type: ignore[arg-type]
        serve_locally=True,
    )
    app.layout = shell
    _register_shell_callbacks(app)
    # Dash registers the component bundles a worker may serve while rendering the index page;
    # render it once now so a worker whose first request is a bundle does not answer 500.
    with server.test_request_context("/"):
        app.index()
    # Asked per answer: Dash adds its pages' clientside callbacks (an inline script) only when
    # the first real request sets the server up.
    server.config[security.CSP_KEY] = lambda: security.content_security_policy(app.csp_hashes())
    return app


def create_server(settings: Settings, *, secret_key: str | None = None) -> Flask:
    """The WSGI application gunicorn serves."""
    server: Flask = create_app(settings, secret_key=secret_key).server
    return server


# --- shell --------------------------------------------------------------------------------------

def shell() -> html.Div:
    """The frame around every page; built per request, so it knows the signed-in user."""
    user, role = auth.current_user(), auth.current_role()
    links = [dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"],
                                     id={"type": "nav-link", "path": page["relative_path"]}))
             for page in dash.page_registry.values()]
    account = html.Span([
        html.Span(user or "", className="me-2 text-white"),
        dbc.Badge(role or "", color="light", text_color="dark", className="me-3 role-badge",
                  id="role-badge"),
        # Logout is a POST (a GET would let any page on the web sign the user out).
        html.Form([dcc.Input(type="hidden", name="csrf_token", value=generate_csrf()),
                   html.Button("Log out", type="submit", id="logout-link",
                               className="btn btn-link text-white-50 small p-0")],
                  action="/logout", method="POST", className="m-0"),
    ], className="d-flex align-items-center")
    navbar = dbc.Navbar(dbc.Container([
        dbc.NavbarBrand("Segmint", href="/", className="fw-bold"),
        dbc.Nav(links, navbar=True, className="me-auto", id=ids.NAV_LINKS),
        account,
    ], fluid=True), color="primary", dark=True, className="mb-3")
    body: list[Any] = [dcc.Location(id=ids.NAVIGATE, refresh="callback-nav")]
    if auth.is_analyst():
        body.append(_filter_bar())
    body.append(dash.page_container)
    return html.Div([navbar, dbc.Container(body, fluid=True, className="pb-5")])


def _filter_bar() -> dbc.Card:
    span = frames.data_span()
    classes, segments = frames.filter_options()
    return dbc.Card(dbc.CardBody([dbc.Row([
        dbc.Col([dbc.Label("Date range", className="small text-muted mb-0"),
                 dcc.DatePickerRange(id=ids.FILTER_DATES, display_format="YYYY-MM-DD",
                                     min_date_allowed=span[0].isoformat() if span else None,
                                     max_date_allowed=span[1].isoformat() if span else None,
                                     initial_visible_month=span[1].isoformat() if span else None,
                                     clearable=True, className="d-block",
                                     style={"minWidth": "330px"})], md=4),
        dbc.Col(dbc.Row([
            dbc.Col([dbc.Label("Classes", className="small text-muted mb-0"),
                     dcc.Dropdown(id=ids.FILTER_CLASSES, options=classes, multi=True,
                                  placeholder="all classes")], md=6),
            dbc.Col([dbc.Label("RFM segments", className="small text-muted mb-0"),
                     dcc.Dropdown(id=ids.FILTER_SEGMENTS, options=segments, multi=True,
                                  placeholder="all segments")], md=6),
        ], className="g-2"), id=ids.FILTER_GROUP_PICKERS, md=6),
        # No d-flex class here: its display !important would beat the callback's display none.
        dbc.Col(html.Div(GROUP_FILTER_NOTE, className="small text-muted pt-4"),
                id=ids.FILTER_GROUP_NOTE, md=6, style={"display": "none"}),
        dbc.Col([dbc.Button("Apply", id=ids.FILTER_APPLY, color="primary", className="me-2"),
                 dbc.Button("Reset", id=ids.FILTER_RESET, color="secondary", outline=True)],
                md=2, className="d-flex align-items-end"),
    ], className="g-2"), html.Div(id=ids.FILTER_MESSAGE, className="small text-danger",
                                   role="status")]), className="filter-bar shadow-sm mb-3",
                    id=ids.FILTER_BAR)


def _register_shell_callbacks(app: Dash) -> None:
    @app.callback(
        Output(ids.NAVIGATE, "href"),
        Input(ids.FILTER_APPLY, "n_clicks"),
        Input(ids.FILTER_RESET, "n_clicks"),
        State(ids.FILTER_DATES, "start_date"),
        State(ids.FILTER_DATES, "end_date"),
        State(ids.FILTER_CLASSES, "value"),
        State(ids.FILTER_SEGMENTS, "value"),
        State(ids.PAGES_LOCATION, "pathname"),
        prevent_initial_call=True,
    )
    def apply_filters(_apply: Any, _reset: Any, start: str | None, end: str | None,
                      classes: list[str] | None, segments: list[str] | None,
                      pathname: str | None) -> str:
        auth.require_analyst()
        path = pathname or "/"
        if dash.ctx.triggered_id == ids.FILTER_RESET:
            return path
        filters = Filters(since=parse_date(start), until=parse_date(end),
                          classes=tuple(sorted(classes or ())),
                          segments=tuple(sorted(segments or ())))
        return path + filters.to_query()

    @app.callback(
        Output(ids.FILTER_DATES, "start_date"),
        Output(ids.FILTER_DATES, "end_date"),
        Output(ids.FILTER_CLASSES, "value"),
        Output(ids.FILTER_SEGMENTS, "value"),
        Output(ids.FILTER_MESSAGE, "children"),
        Input(ids.PAGES_LOCATION, "search"),
    )
    def show_filters(search: str | None) -> tuple[Any, ...]:
        if not auth.is_analyst():
            raise PreventUpdate
        filters = from_search(search, allowed=True)
        current = frames.scope(filters)
        return (current.since.isoformat() if current.since else None,
                current.until.isoformat() if current.until else None,
                list(filters.classes), list(filters.segments), ignored_message(filters))

    @app.callback(Output(ids.FILTER_BAR, "style"), Output(ids.FILTER_GROUP_PICKERS, "style"),
                  Output(ids.FILTER_GROUP_NOTE, "style"), Input(ids.PAGES_LOCATION, "pathname"))
    def show_filter_bar(pathname: str | None) -> tuple[dict[str, str], ...]:
        hidden = {"display": "none"}
        path = pathname or "/"
        groups = path in GROUP_FILTERED_PAGES
        return {} if path in FILTERED_PAGES else hidden, {} if groups else hidden, \
            hidden if groups else {}

    @app.callback(
        Output({"type": "nav-link", "path": ALL}, "href"),
        Output({"type": "nav-link", "path": ALL}, "active"),
        Input(ids.PAGES_LOCATION, "pathname"),
        Input(ids.PAGES_LOCATION, "search"),
        State({"type": "nav-link", "path": ALL}, "id"),
    )
    def keep_filters_in_links(pathname: str | None, search: str | None,
                              link_ids: list[dict[str, str]]) -> tuple[list[str], list[bool]]:
        """Links carry the analyst's filters from page to page; the current one is active."""
        query = from_search(search, allowed=auth.is_analyst()).to_query()
        return ([link["path"] + query for link in link_ids],
                [link["path"] == (pathname or "/") for link in link_ids])


