"""Offers: message counts by status, delivery rate, opt-outs, why customers were skipped, and
what each offer brought against its holdout (engine/offer_outcomes.py, docs/outcomes.md)."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from dashboard import components, context, ids
from dashboard.figures import conversion_curve_figure, offer_status_figure, uplift_figure
from engine.offer_outcomes import Outcomes, load_outcomes
from engine.outcomes import conversion_curve
from engine.store import offers as offer_store

dash.register_page(__name__, path="/offers", name="Offers", title="Segmint · Offers", order=5)

CLASS_COLUMNS = ["customer_class", "treatment", "holdout", "conversion_treatment",
                 "conversion_holdout", "uplift", "uplift_ci_low", "uplift_ci_high", "mde"]


def layout(**_kwargs: Any) -> html.Div:
    header = components.page_header("Offers", "Offer SMS sent to customers and what became of them")
    summary = offer_store.offer_summary(engine=context.engine())
    by_status = summary["by_status"]
    held = int(by_status.loc[by_status["status"] == "holdout", "messages"].sum())
    rate = summary["delivery_rate"]
    cards = dbc.Row([
        components.kpi_card("Messages", f"{summary['total'] - held:,}", "offers-total",
                            f"{summary['dry_run']:,} dry run" + (
                                f", {summary['retry']:,} waiting to retry (Twilio was "
                                "unreachable)" if summary["retry"] else "")
                            + (f"; {held:,} customers held out (no message)" if held else "")),
        components.kpi_card("Delivered", f"{summary['delivered']:,}", "offers-delivered",
                            f"of {summary['attempted']:,} sent"),
        components.kpi_card("Delivery rate", "–" if rate is None else f"{rate:.1%}",
                            "offers-delivery-rate", f"{summary['failed']:,} failed or undelivered"),
        components.kpi_card("Opted out", f"{summary['opted_out']:,}", "offers-opted-out",
                            "replied STOP or unreachable"),
    ])
    if summary["total"] == 0:
        body: list[Any] = [components.empty_state(
            "No offer messages yet: `segmint send-offers` (or the scheduler) sends them after a "
            "run. Without Twilio credentials every message is a dry run.", "No offers sent yet")]
    else:
        body = [dbc.Row([
            dbc.Col(components.card(components.graph(ids.OFFER_STATUS, offer_status_figure(
                by_status[by_status["status"] != "holdout"], "Messages by status"))), lg=6),
            dbc.Col(components.card(components.grid(
                "offers-by-offer", summary["by_offer"], height=300), "Messages by offer"), lg=6),
        ])]
        body += what_the_offers_brought(load_outcomes(context.engine(), context.settings()))
    skips = summary["skips"]
    if not skips.empty:
        body.append(components.card(components.grid("offers-skips", skips, height=300),
                                    "Customers skipped, by reason"))
    return html.Div([header, cards, *body])


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
