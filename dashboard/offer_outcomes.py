"""The Offers page's "What the offers brought" (docs/outcomes.md): pure builders from the
estimates of engine/offer_outcomes.py to Dash components, testable without a browser."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from dashboard import components, ids
from dashboard.figures import conversion_curve_figure, uplift_figure
from engine.offer_outcomes import Outcomes
from engine.outcomes import conversion_curve

CLASS_COLUMNS = ["customer_class", "treatment", "holdout", "conversion_treatment",
                 "conversion_holdout", "uplift", "uplift_ci_low", "uplift_ci_high", "mde"]


def what_the_offers_brought(outcomes: Outcomes) -> list[Any]:
    """The uplift of every offer with its interval, then per offer its verdict, figures,
    cumulative conversion since the send and its classes."""
    title = html.H4("What the offers brought", className="mt-2 mb-1")
    note = html.P(
        f"Each offer against its holdout (customers kept out of it at random): a conversion is a "
        f"purchase within {outcomes.attribution_days} days after the send, or after the "
        "assignment for the holdout. Uplift in conversion points with its 95 % interval "
        "(Newcombe); the MDE is the smallest uplift these groups can detect (80 % power).",
        className="text-muted small")
    if outcomes.by_offer.empty:
        return [title, components.empty_state(
            "No offer has reached customers yet. Every pass keeps a holdout "
            "(`notifications.holdout_share`), so once offers go out this section compares them.",
            "Nothing to measure yet")]
    parts: list[Any] = [title, note, components.card(components.graph(
        ids.OFFER_UPLIFT, uplift_figure(outcomes.by_offer, "Uplift per offer, 95 % interval")))]
    for number, (_, row) in enumerate(outcomes.by_offer.iterrows()):
        parts.append(_offer_card(number, row, outcomes))
    return parts


def _offer_card(number: int, row: pd.Series, outcomes: Outcomes) -> dbc.Card:
    offer = str(row["offer_id"])
    rows = outcomes.attributed[outcomes.attributed["offer_id"] == offer]
    curve = conversion_curve(rows, attribution_days=outcomes.attribution_days)
    classes = outcomes.by_class[outcomes.by_class["offer_id"] == offer][CLASS_COLUMNS]

    def fact(label: str, value: str) -> html.Div:
        return html.Div([html.Span(label, className="text-muted small d-block"),
                         html.Span(value, className="fw-semibold")], className="me-4 mb-2")

    facts = html.Div([
        fact("Treatment", f"{row['treatment']:,} ({_rate(row['conversion_treatment'])} bought)"),
        fact("Holdout", f"{row['holdout']:,} ({_rate(row['conversion_holdout'])} bought)"),
        fact("Incremental revenue", components.money(row["incremental_revenue"])
             if pd.notna(row["incremental_revenue"]) else "–"),
        fact("Smallest detectable uplift",
             "–" if pd.isna(row["mde"]) else f"{row['mde']:.1f} points"),
    ], className="d-flex flex-wrap")
    body = [
        html.P(row["verdict"], id=f"{ids.OFFER_VERDICT}-{number}", className="fs-5 mb-2"),
        facts,
        dbc.Row([
            dbc.Col(components.graph(f"{ids.OFFER_CURVE}-{number}", conversion_curve_figure(
                curve, "Converted since the send: treatment against holdout")), lg=6),
            dbc.Col(components.grid(f"{ids.OFFER_CLASSES}-{number}", classes.round(2),
                                    height=300), lg=6),
        ]),
    ]
    return components.card(body, f"Offer {offer}")


def _rate(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.1%}"
