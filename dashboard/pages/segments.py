"""Segments: six classes and RFM segments (size and value), the cluster scatter, the run's elbow
and silhouette plots, transitions between two runs, and the customer table analysts export."""

from __future__ import annotations

from datetime import date
from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import auth, components, context, frames, ids
from dashboard.figures import (
    cluster_scatter_figure,
    diagnostic_scores,
    elbow_figure,
    sankey_figure,
    segment_figure,
    silhouette_figure,
)
from dashboard.filters import Filters, from_params, from_search
from dashboard.paging import (
    check_grid_request,
    filter_frame,
    grid_block,
    request_key,
    sort_frame,
)
from engine.exports import neutralise_formulas

dash.register_page(__name__, path="/segments", name="Segments", title="Segmint · Segments",
                   order=2)

# The customer table: rows per page, and rows per request (five pages).
TABLE_PAGE = 20
KPI_NUMBERS = ("customers", "revenue_share", "aov", "repeat_rate", "retention_90d",
               "median_days_between_orders")
TABLE_BLOCK = 100


def layout(**kwargs: Any) -> html.Div:
    analyst = auth.is_analyst()
    filters = from_params(kwargs, allowed=analyst)
    page: html.Div = context.cached("page-segments", analyst, filters,
                                    compute=lambda: _page(filters, analyst))
    return page


def _page(filters: Filters, analyst: bool) -> html.Div:
    header = components.page_header("Segments", "Six classes, RFM segments and k-means clusters")
    scope = frames.scope(filters)
    if scope.run is None:
        return html.Div([header, components.empty_state(components.NO_RUN_MESSAGE)])
    rows = frames.filter_rows(frames.segment_rows(scope), filters)
    diagnostics = scope.run.get("diagnostics") or {}
    scores = diagnostic_scores(diagnostics)
    chosen_k = diagnostics.get("chosen_k") or scope.run.get("k")
    selection = ""
    if filters.classes or filters.segments:
        selection = " Filtered to " + "; ".join(
            part for part in (", ".join(filters.classes), ", ".join(filters.segments)) if part)
    return html.Div([
        header,
        components.scope_note(scope.describe() + selection),
        dbc.Row([
            dbc.Col(components.card(components.graph(ids.CLASS_SIZES, segment_figure(
                frames.summarise(rows, "customer_class"), "customer_class",
                "Six classes: size and value"))), lg=6),
            dbc.Col(components.card(components.graph(ids.RFM_SEGMENT_SIZES, segment_figure(
                frames.summarise(rows, "rfm_segment"), "rfm_segment",
                "RFM segments: size and value"))), lg=6),
        ]),
        dbc.Row([
            dbc.Col(components.card(components.graph(ids.CLUSTER_SCATTER, cluster_scatter_figure(
                rows, "Clusters by recency, frequency and monetary value"))), lg=6),
            dbc.Col([
                components.card(components.graph(ids.ELBOW, elbow_figure(scores, chosen_k))),
                components.card(components.graph(ids.SILHOUETTE,
                                                 silhouette_figure(scores, chosen_k))),
            ], lg=6),
        ]),
        components.card(components.grid(ids.SEGMENT_KPIS, frames.segment_kpis(scope, filters),
                                        height=360, number_columns=KPI_NUMBERS),
                        "KPIs per segment (this window): revenue share, average order value, "
                        "repeat rate, 90-day retention, median days between orders"),
        _transitions_card(int(scope.run["id"])),
        _customer_table(rows, analyst, filters.to_query()),
    ])


def _run_options(runs: pd.DataFrame) -> list[dcc.Dropdown.Options]:
    return [{"label": f"#{run['id']} · as of {run['as_of']} · k={components.count(run['k'])} · "
                      f"{components.count(run['n_customers'])} customers", "value": int(run["id"])}
            for run in runs.to_dict("records")]


def _transitions_card(published: int) -> dbc.Card:
    runs = frames.runs()
    options = _run_options(runs)
    earlier = [int(value) for value in runs["id"] if int(value) != published]
    start = earlier[0] if earlier else published
    pickers = dbc.Row([
        dbc.Col([dbc.Label("From run", className="small text-muted"),
                 dcc.Dropdown(id=ids.RUN_FROM, options=options, value=start, clearable=False)],
                md=6),
        dbc.Col([dbc.Label("To run", className="small text-muted"),
                 dcc.Dropdown(id=ids.RUN_TO, options=options, value=published, clearable=False)],
                md=6),
    ], className="mb-2")
    body = [pickers, components.graph(ids.SANKEY, _sankey(start, published))]
    if not earlier:
        body.insert(0, html.P("Only one run so far: transitions appear after the next run.",
                              className="text-muted small"))
    return components.card(body, "Class transitions between two runs")


def _sankey(from_run: int, to_run: int) -> Any:
    def build() -> dict[str, Any]:
        flows = frames.transitions(from_run, to_run)
        figure = sankey_figure(flows, f"Customers moving between classes: run #{from_run} → "
                                      f"#{to_run}", f"#{from_run}", f"#{to_run}")
        return dict(figure.to_dict())
    return context.cached("sankey-figure", from_run, to_run, lasting=True, compute=build)


@callback(Output(ids.SANKEY, "figure"), Input(ids.RUN_FROM, "value"), Input(ids.RUN_TO, "value"),
          prevent_initial_call=True)
def update_sankey(from_run: int | None, to_run: int | None) -> Any:
    if from_run is None or to_run is None:
        raise PreventUpdate
    return _sankey(int(from_run), int(to_run))


def _count_text(shown: int, total: int, analyst: bool) -> str:
    text = (f"{total:,} customers" if shown == total
            else f"{shown:,} of {total:,} customers match the table's filters")
    if analyst:
        text += " (the export has every one)" if shown == total else " (the export has these)"
    return text


def _customer_table(rows: pd.DataFrame, analyst: bool, query: str) -> dbc.Card:
    """The customers of the selection, paged by the server: the page sends no rows; the grid asks
    for a block of TABLE_BLOCK rows at a time (update_customer_rows), sorted and filtered over
    every customer of the selection."""
    tools: list[Any] = [html.Span(_count_text(len(rows), len(rows), analyst),
                                  id=ids.CUSTOMER_COUNT, className="me-3 fw-semibold")]
    if analyst:
        tools += [dbc.Button("Export CSV", id=ids.EXPORT_BUTTON, color="primary", size="sm"),
                  dcc.Download(id=ids.EXPORT_DOWNLOAD),
                  dcc.Store(id=ids.EXPORT_QUERY, data=query)]
    table = components.paged_grid(ids.CUSTOMER_TABLE, rows.head(0), page_size=TABLE_PAGE,
                                  block_size=TABLE_BLOCK, money_columns=("monetary",))
    return components.card([html.Div(tools, className="d-flex align-items-center mb-2"),
                            dcc.Store(id=ids.CUSTOMER_QUERY, data=query), table], "Customers")


def _grid_models(request: dict[str, Any] | None) -> dict[str, Any]:
    """The grid's column filters and sorting from its last getRowsRequest (no rows asked)."""
    request = check_grid_request(request)
    return {"sortModel": request.get("sortModel") or [],
            "filterModel": request.get("filterModel") or {}}


@callback(Output(ids.CUSTOMER_TABLE, "getRowsResponse"), Output(ids.CUSTOMER_COUNT, "children"),
          Input(ids.CUSTOMER_TABLE, "getRowsRequest"), State(ids.CUSTOMER_QUERY, "data"),
          prevent_initial_call=True)
def update_customer_rows(request: dict[str, Any] | None, query: str | None) -> Any:
    """One block of the customer table (a page, a new sort or filter), from the cached rows, and
    how many customers pass the table's own column filters."""
    if not request:
        raise PreventUpdate
    analyst = auth.is_analyst()
    filters = from_search(query, allowed=analyst)

    def build() -> dict[str, Any]:
        # segment_rows gives the empty frame of SEGMENT_COLUMNS when there is no run.
        rows = frames.filter_rows(frames.segment_rows(frames.scope(filters)), filters)
        block, count = grid_block(rows, request, key="customer_id")
        return {"rowData": components.json_records(block), "rowCount": count,
                "total": len(rows)}
    # Keyed by the filters and the request (the data version covers a new run): most requests
    # are the first page of a selection, which every visitor of that selection shares.
    answer = context.cached("customer-block", filters, request_key(request), compute=build)
    return ({"rowData": answer["rowData"], "rowCount": answer["rowCount"]},
            _count_text(answer["rowCount"], answer["total"], analyst))


@callback(Output(ids.EXPORT_DOWNLOAD, "data"), Input(ids.EXPORT_BUTTON, "n_clicks"),
          State(ids.EXPORT_QUERY, "data"), State(ids.CUSTOMER_TABLE, "getRowsRequest"),
          prevent_initial_call=True)
def export_csv(n_clicks: int | None, query: str | None, request: dict[str, Any] | None) -> Any:
    """The customer rows the table shows as CSV (`export segments` columns): the page's filters,
    then the grid's own column filters and sorting; analysts only. The text is cached per run,
    window, filters and grid models, so repeated exports of a selection write it once."""
    auth.require_analyst()
    if not n_clicks:
        raise PreventUpdate
    filters = from_search(query, allowed=True)
    scope = frames.scope(filters)
    if scope.run is None:
        raise PreventUpdate
    models = _grid_models(request)

    def build() -> str:
        rows = frames.filter_rows(frames.segment_rows(scope), filters)
        shown = sort_frame(filter_frame(rows, models["filterModel"]), models["sortModel"],
                           key="customer_id")
        if context.settings().export.neutralise_formulas:
            shown = neutralise_formulas(shown)  # formula-like ids and names shown, not run
        text: str = shown.to_csv(index=False)
        return text
    content = context.cached("segments-csv", scope.run_id, scope.since, scope.until,
                             filters.classes, filters.segments, request_key(models),
                             compute=build)
    name = f"segments-run{scope.run['id']}-{_stamp(scope.since)}-{_stamp(scope.until)}.csv"
    return dcc.send_string(content, name)


def _stamp(value: date | None) -> str:
    return value.isoformat() if value else "all"
