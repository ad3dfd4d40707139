"""Jobs: the scheduler's job history with status and errors."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from dashboard import components, context, ids
from engine.store import jobs as job_store

dash.register_page(__name__, path="/jobs", name="Jobs", title="Segmint · Jobs", order=6)

STATUS_COLOURS = {"succeeded": "success", "failed": "danger", "running": "primary",
                  "skipped": "secondary"}


def layout(**_kwargs: Any) -> html.Div:
    header = components.page_header("Jobs", "Scheduled ingests, runs and offer passes")
    history = job_store.job_history(engine=context.engine())
    if history.empty:
        return html.Div([header, components.empty_state(
            "No jobs have run yet: start `segmint scheduler` (or `segmint demo`).",
            "No job history")])
    counts = history["status"].value_counts()
    badges = html.Div([
        dbc.Badge(f"{status}: {count}", color=STATUS_COLOURS.get(str(status), "secondary"),
                  className="me-2 p-2") for status, count in counts.items()], className="mb-3")
    latest_failure = history[history["status"] == "failed"].head(1)
    alert: list[Any] = []
    if not latest_failure.empty:
        row = latest_failure.iloc[0]
        when = pd.Timestamp(row["started_at"]).strftime("%Y-%m-%d %H:%M")
        alert.append(dbc.Alert(f"Last failure: {row['job_id']} at {when} UTC: "
                               f"{row['error']}", color="warning", className="small"))
    table = components.grid(ids.JOBS_TABLE, history, height=520)
    return html.Div([header, badges, *alert, components.card(table, "Job history")])
