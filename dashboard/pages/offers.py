"""Offers: message counts by status, delivery rate, opt-outs, why customers were skipped, and
what each offer brought against its holdout (engine/offer_outcomes.py, docs/outcomes.md)."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import components, context, ids
from dashboard.figures import offer_status_figure
from dashboard.offer_outcomes import what_the_offers_brought
from engine.offer_outcomes import load_outcomes
from engine.store import offer_results as offer_store

dash.register_page(__name__, path="/offers", name="Offers", title="Segmint · Offers", order=5)


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
