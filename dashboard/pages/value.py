"""Value & risk: the published run's predicted customer value (BG/NBD + Gamma-Gamma): the CLV
distribution, probability alive over recency x frequency, the model's backtest, and the valuable
customers at high churn risk (analysts export them as CSV)."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import auth, components, context, frames, ids
from dashboard.figures_value import (
    at_risk_rows,
    calibration_figure,
    clv_distribution_figure,
    p_alive_matrix_figure,
)
from engine.exports import neutralise_formulas

BACKTEST_WARN_PCT = 20.0  # a larger total error gets a plain warning under the plot

dash.register_page(__name__, path="/value", name="Value & risk", title="Segmint · Value & risk",
                   order=5)


def _clv_frames(run_id: int) -> tuple[dict[str, Any] | None, pd.DataFrame]:
    """The run's CLV fit and customer figures (written by the run, so kept until the data
    changes: 0.8 s of SQL at 185,000 customers)."""
    def compute() -> tuple[dict[str, Any] | None, pd.DataFrame]:
        from engine.store import clv as clv_store

        engine = context.engine()
        return (clv_store.read_fit(engine=engine, run_id=run_id),
                clv_store.read_customers(engine=engine, run_id=run_id))
    found: tuple[dict[str, Any] | None, pd.DataFrame] = context.cached(
        "clv", run_id, lasting=True, compute=compute)
    return found


def _at_risk(run_id: int) -> pd.DataFrame:
    def compute() -> pd.DataFrame:
        clv = _clv_frames(run_id)[1]  # the page's own read, not a second one
        # the run's customer rows come from the page cache the other pages share
        return at_risk_rows(clv, frames.run_rows(run_id)) if not clv.empty else clv
    frame: pd.DataFrame = context.cached("value-at-risk", run_id, lasting=True, compute=compute)
    return frame


def layout(**_kwargs: Any) -> html.Div:
    analyst = auth.is_analyst()
    page: html.Div = context.cached("page-value", analyst, compute=lambda: _page(analyst))
    return page


def _page(analyst: bool) -> html.Div:
    header = components.page_header("Value & risk", "Who is worth keeping and who is leaving "
                                    "(BG/NBD and Gamma-Gamma, fitted on every run)")
    run = frames.published_run()
    if run is None:
        return html.Div([header, components.empty_state(components.NO_RUN_MESSAGE)])
    run_id = int(run["id"])
    fit, clv = _clv_frames(run_id)
    if fit is None:
        return html.Div([header, components.empty_state(
            f"Run #{run_id} has no CLV (made before CLV existed, or [clv] enabled = false).")])
    notes = [html.Li(note) for note in fit.get("notes", [])]
    note = components.scope_note(
        f"Run #{run_id} (as of {run.get('as_of')}): {len(clv):,} customers scored; time unit "
        f"{fit.get('time_unit')}. Customers with little history have shrunk estimates.")
    parts: list[Any] = [header, note]
    if notes:
        parts.append(dbc.Alert(html.Ul(notes, className="mb-0"), color="warning",
                               id="value-notes"))
    if clv.empty:
        return html.Div(parts)
    totals = [
        components.kpi_card("Predicted 365-day value", components.money(clv["clv_365d"].sum()),
                            "value-kpi-clv"),
        components.kpi_card("Likely still buying", f"{clv['p_alive'].sum():,.0f} of {len(clv):,}",
                            "value-kpi-alive", hint="expected number of customers who have not "
                            "left (the sum of P(alive))"),
        components.kpi_card("Expected purchases, next 90 days",
                            f"{clv['expected_purchases_90d'].sum():,.0f}", "value-kpi-90d"),
        components.kpi_card("High churn risk", f"{(clv['churn_risk'] == 'high').sum():,}",
                            "value-kpi-high", hint="customers with P(alive) below the "
                            "[clv] churn_high_below threshold"),
    ]
    backtest = fit.get("backtest") or {}
    max_frequency = int(min(float(clv["frequency"].quantile(0.99)), 40.0))
    figures = dbc.Row([
        dbc.Col(components.card(components.graph(ids.VALUE_CLV_DISTRIBUTION,
                                                 clv_distribution_figure(clv))), lg=6),
        dbc.Col(components.card([
            components.graph(ids.VALUE_P_ALIVE, p_alive_matrix_figure(
                fit.get("bgnbd"), T=float(clv["T"].max()), max_frequency=max_frequency,
                time_unit=str(fit.get("time_unit")))),
            html.P("Red: customers who bought often but not for a long while have probably "
                   "left. The model counts customers with a single purchase day (frequency 0) "
                   "as still buying until they prove otherwise.",
                   className="small text-muted mb-0")]), lg=6),
    ], className="mb-3")
    calibration = components.card([
        components.graph(ids.VALUE_CALIBRATION, calibration_figure(backtest)),
        html.P(_backtest_text(backtest), className="small text-muted mb-0",
               id="value-backtest-text")])
    rows = _at_risk(run_id)
    tools: list[Any] = [html.Span(f"{len(rows):,} customers at high churn risk, most past spend "
                                  "first: the ones to win back before they are gone",
                                  className="me-3 fw-semibold")]
    if analyst:
        tools += [dbc.Button("Export CSV", id=ids.VALUE_EXPORT_BUTTON, color="primary",
                             size="sm"), dcc.Download(id=ids.VALUE_EXPORT_DOWNLOAD)]
    table = components.card([
        html.Div(tools, className="d-flex align-items-center mb-2"),
        _at_risk_grid(rows),
    ], "Valuable customers at high churn risk")
    return html.Div([*parts, dbc.Row(totals, className="mb-3"), figures, calibration, table])


def _backtest_text(backtest: dict[str, Any]) -> str:
    """The backtest in a sentence, with what its error means for reading the page."""
    overall = backtest.get("overall")
    if not overall or overall.get("total_error_pct") is None:
        return str(backtest.get("note", ""))
    error = float(overall["total_error_pct"])
    text = (f"Refit on the data up to {backtest.get('cutoff')}, predicted the next "
            f"{backtest.get('holdout_days')} days: {overall['predicted']:,.0f} purchases "
            f"predicted, {overall['actual']:,.0f} made (error {error:+.1f} %), mean absolute "
            f"error {overall['mae']:.2f} per customer.")
    if abs(error) > BACKTEST_WARN_PCT:
        direction = "fewer" if error < 0 else "more"
        text += (f" The model predicted {abs(error):.0f} % {direction} purchases than were made "
                 "(it knows no seasons or growth): read its purchase and value figures as "
                 f"{'a floor' if error < 0 else 'a ceiling'}, its ranking of customers as the "
                 "useful part.")
    return text


# The grid formats the stored figures for reading; the CSV keeps them as stored, in SPEC.md's
# column order. The grid leads with who the customer is and what they spent (the sort), and
# leaves out churn_risk, "high" on every row.
AT_RISK_FORMATS = {"p_alive": "d3.format('.1%')(params.value)",
                   "recency": "d3.format('.1f')(params.value)",
                   "T": "d3.format('.1f')(params.value)",
                   "expected_purchases_90d": "d3.format('.2f')(params.value)",
                   "expected_purchases_365d": "d3.format('.2f')(params.value)"}
AT_RISK_GRID_ORDER = ["customer_id", "customer_class", "rfm_segment", "monetary", "clv_365d",
                      "expected_order_value", "p_alive", "expected_purchases_90d",
                      "expected_purchases_365d", "frequency", "recency", "T"]


def _at_risk_grid(rows: pd.DataFrame) -> Any:
    grid = components.grid(ids.VALUE_AT_RISK_TABLE, rows, height=460,
                           money_columns=("monetary", "expected_order_value", "clv_365d"))
    columns = {column["field"]: column for column in grid.columnDefs}
    for name, column in columns.items():
        column.update(wrapHeaderText=True, autoHeaderHeight=True, minWidth=100)
        if name in AT_RISK_FORMATS:
            column["valueFormatter"] = {"function": "params.value == null ? '' : "
                                                    + AT_RISK_FORMATS[name]}
    grid.columnDefs = [columns[name] for name in AT_RISK_GRID_ORDER]
    return grid


@callback(Output(ids.VALUE_EXPORT_DOWNLOAD, "data"), Input(ids.VALUE_EXPORT_BUTTON, "n_clicks"),
          prevent_initial_call=True)
def export_at_risk(n_clicks: int | None) -> Any:
    """The at-risk table as CSV; analysts only."""
    auth.require_analyst()
    run = frames.published_run()
    if not n_clicks or run is None:
        raise PreventUpdate
    run_id = int(run["id"])
    content = context.cached("value-at-risk-csv", run_id, compute=lambda: _at_risk_csv(run_id))
    return dcc.send_string(content, f"at-risk-run{run_id}.csv")


def _at_risk_csv(run_id: int) -> str:
    rows = _at_risk(run_id)
    if context.settings().export.neutralise_formulas:
        rows = neutralise_formulas(rows)  # formula-like customer ids shown, not run
    text: str = rows.to_csv(index=False)
    return text
