"""Small building blocks shared by the pages: headers, KPI cards, empty states, tables."""

from __future__ import annotations

import math
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

NO_RUN_MESSAGE = "No segmentation run yet: run `segmint ingest ...` then `segmint run`."
WIDE_COLUMNS = ("description", "reason", "error", "if_bought", "then_buy", "strategy")
NO_DATA_MESSAGE = "No transactions loaded yet: run `segmint ingest PATH` to load a file."


def page_header(title: str, subtitle: str | None = None) -> html.Div:
    children: list[Any] = [html.H2(title, className="page-title mb-1")]
    if subtitle:
        children.append(html.P(subtitle, className="text-muted mb-3"))
    return html.Div(children, className="mb-2")


def scope_note(text: str) -> dbc.Alert:
    """Says which run and window the page shows."""
    return dbc.Alert(text, color="light", className="scope-note py-2 small border",
                     id="scope-note")


def empty_state(message: str, title: str = "Nothing to show yet") -> dbc.Alert:
    return dbc.Alert([html.H5(title, className="alert-heading"), dcc.Markdown(message)],
                     color="info", className="empty-state")


def kpi_card(label: str, value: str, component_id: str, hint: str | None = None) -> dbc.Col:
    body = [html.Div(label, className="kpi-label text-muted small text-uppercase"),
            html.Div(value, id=component_id, className="kpi-value fs-3 fw-semibold")]
    if hint:
        body.append(html.Div(hint, className="text-muted small"))
    return dbc.Col(dbc.Card(dbc.CardBody(body), className="kpi-card shadow-sm h-100"),
                   xs=12, sm=6, lg=3, className="mb-3")


def graph(component_id: str, figure: go.Figure | dict[str, Any]) -> dcc.Graph:
    # A plain dict: cheap to cache and to send (the Figure object validated itself already).
    plain = figure.to_dict() if isinstance(figure, go.Figure) else figure
    return dcc.Graph(id=component_id, figure=plain,
                     config={"displaylogo": False, "displayModeBar": False},
                     className="figure-card")


def card(children: Any, title: str | None = None) -> dbc.Card:
    parts = []
    if title:
        parts.append(dbc.CardHeader(title))
    parts.append(dbc.CardBody(children))
    return dbc.Card(parts, className="shadow-sm mb-4")


def count(value: Any, missing: str = "?") -> str:
    """A whole number with thousands separators; `missing` for None or NaN (a run recorded
    without it: pandas turns such a column into floats, so 3 arrives as 3.0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return f"{int(value):,}"


def money(value: float) -> str:
    return f"£{value:,.0f}"


def _column_defs(frame: pd.DataFrame, money_columns: tuple[str, ...],
                 number_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    columns = []
    for name in frame.columns:
        column: dict[str, Any] = {"field": name, "headerName": name.replace("_", " ")}
        if name in money_columns:
            # Rows of a paged grid are empty until their block arrives: format only numbers.
            column["valueFormatter"] = {"function": "params.value == null ? '' : "
                                                    "d3.format(',.2f')(params.value)"}
            column["filter"] = "agNumberColumnFilter"
        elif name in number_columns or pd.api.types.is_numeric_dtype(frame[name]):
            column["filter"] = "agNumberColumnFilter"
        else:
            # Text (descriptions, reasons, errors) gets the room; the full value shows on hover.
            column.update(flex=3 if name in WIDE_COLUMNS else 2, minWidth=140, tooltipField=name,
                          filter="agTextColumnFilter")
        columns.append(column)
    return columns


# AG Grid 33's Theming API (dash-ag-grid 33): the theme's CSS comes from the grid's own script,
# served locally with the other component bundles (serve_locally), no stylesheet to fetch. The
# legacy className="ag-theme-alpine" did nothing there: its stylesheet never reached the page,
# so the grids fell back to the default Quartz theme, whose font list (IBM Plex Sans, then
# Apple/Windows/Ubuntu system fonts) has no generic family: on a machine with none of them the
# cells were drawn in the browser's serif default. Alpine's list ends with sans-serif.
GRID_THEME = "themeAlpine"

DEFAULT_COLUMN = {"sortable": True, "filter": True, "resizable": True, "floatingFilter": True,
                  "minWidth": 90, "flex": 1}


def grid(component_id: str, frame: pd.DataFrame, *, height: int = 420, page_size: int = 20,
         money_columns: tuple[str, ...] = (), number_columns: tuple[str, ...] = ()) -> dag.AgGrid:
    """A sortable, filterable AG Grid of a frame (dates and None made JSON-safe)."""
    return dag.AgGrid(
        id=component_id,
        rowData=json_records(frame),
        columnDefs=_column_defs(frame, money_columns, number_columns),
        defaultColDef=DEFAULT_COLUMN,
        dashGridOptions={"pagination": True, "paginationPageSize": page_size,
                         "animateRows": False, "theme": GRID_THEME},
        style={"height": f"{height}px"},
    )


def paged_grid(component_id: str, columns: pd.DataFrame, *, height: int = 420,
               page_size: int = 20, block_size: int = 100,
               money_columns: tuple[str, ...] = ()) -> dag.AgGrid:
    """An AG Grid whose rows come from the server a block at a time (infinite row model): a
    callback on its getRowsRequest answers with paging.grid_block, which sorts and filters
    every row server-side. columns gives the column names and types (no rows needed)."""
    return dag.AgGrid(
        id=component_id,
        rowModelType="infinite",
        columnDefs=_column_defs(columns, money_columns, ()),
        defaultColDef=DEFAULT_COLUMN,
        dashGridOptions={"pagination": True, "paginationPageSize": page_size,
                         "cacheBlockSize": block_size, "maxBlocksInCache": 20,
                         "animateRows": False, "theme": GRID_THEME},
        style={"height": f"{height}px"},
    )


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values: timestamps as ISO text, NaN as None (column by column, with
    plain lists: pandas' own to_dict costs more than the rows of a table page)."""
    names = [str(name) for name in frame.columns]
    columns: list[list[Any]] = []
    for name in frame.columns:
        column = frame[name]
        missing = column.isna().to_numpy()
        if pd.api.types.is_datetime64_any_dtype(column):
            values = column.dt.strftime("%Y-%m-%d %H:%M").tolist()
        elif column.dtype == object:
            values = [_plain(value) for value in column.tolist()]
        else:
            values = column.tolist()
        if missing.any():
            values = [None if gone else value for value, gone in zip(values, missing, strict=True)]
        columns.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="minutes") if hasattr(value, "hour") \
            else value.isoformat()
    return value
