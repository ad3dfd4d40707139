"""Strategies: one card per cluster with its persona, tier, the R/F/M levels behind the persona,
size, revenue share, centroid and the persona's strategy."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import components, context, frames
from dashboard.figures import TIER_COLOURS

dash.register_page(__name__, path="/strategies", name="Strategies", title="Segmint · Strategies",
                   order=3)


def layout(**_kwargs: Any) -> html.Div:
    # The data version in every cache key already changes with the published run.
    page: html.Div = context.cached("page-strategies", compute=_page)
    return page


def _page() -> html.Div:
    header = components.page_header("Strategies", "What to do with each cluster of the "
                                                   "published run")
    run = frames.published_run()
    if run is None:
        return html.Div([header, components.empty_state(components.NO_RUN_MESSAGE)])
    profiles = frames.profiles(int(run["id"]))
    if profiles.empty:
        return html.Div([header, components.empty_state("This run stored no cluster profiles.")])
    cards = [dbc.Col(_cluster_card(row), lg=4, md=6, className="mb-4")
             for row in profiles.sort_values("cluster").to_dict("records")]
    note = components.scope_note(f"Run #{run['id']} (k = {run.get('k')}, as of {run.get('as_of')}):"
                                 " clusters are numbered by value, 0 = most valuable.")
    return html.Div([header, note, dbc.Row(cards)])


LEVEL_TEXT = {"r_level": "Recency", "f_level": "Frequency", "m_level": "Monetary"}


def _levels(profile: Mapping[Hashable, Any]) -> html.Div:
    """The R/F/M levels (relative to all customers) the persona was named from."""
    badges = [html.Span(f"{label} {profile.get(key) or '?'}",
                        className="badge text-bg-light border me-1 persona-level")
              for key, label in LEVEL_TEXT.items()]
    return html.Div(badges, className="mb-2 small", title="The centroid's level against all "
                    "customers (recency high = recent); the persona rules are in config.toml")


def _cluster_card(profile: Mapping[Hashable, Any]) -> dbc.Card:
    tier = str(profile["value_tier"])
    persona = str(profile.get("persona") or "")
    colour = TIER_COLOURS.get(tier, "#6c757d")
    facts = html.Dl([
        html.Dt("Customers", className="col-6"), html.Dd(f"{profile['size']:,}", className="col-6"),
        html.Dt("Revenue share", className="col-6"),
        html.Dd(f"{profile['revenue_share']:.1%}", className="col-6"),
        html.Dt("Revenue", className="col-6"),
        html.Dd(components.money(profile["revenue"]), className="col-6"),
        html.Dt("Recency (mean)", className="col-6"),
        html.Dd(f"{profile['recency_days']:,.0f} days", className="col-6"),
        html.Dt("Frequency (mean)", className="col-6"),
        html.Dd(f"{profile['frequency']:,.1f} orders", className="col-6"),
        html.Dt("Monetary (mean)", className="col-6"),
        html.Dd(components.money(profile["monetary"]), className="col-6"),
    ], className="row small mb-2")
    return dbc.Card([
        dbc.CardHeader(html.Div([
            html.Span(f"Cluster {profile['cluster']}", className="fw-semibold me-2"),
            html.Span(persona or "No persona", className="fw-semibold me-2 strategy-persona"),
            html.Span(tier, className="badge", style={"backgroundColor": colour}),
        ]), className="strategy-header"),
        dbc.CardBody([_levels(profile), facts, html.H6("Strategy", className="text-muted"),
                      html.P(profile.get("strategy") or "No strategy text for this persona "
                             "(set [strategies] in config.toml).", className="strategy-text")]),
    ], className="shadow-sm h-100 strategy-card", style={"borderTop": f"4px solid {colour}"})
