"""Overview: KPI cards and monthly trends (revenue, orders, active and new customers)."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import auth, components, context, frames, ids
from dashboard.figures import best_month, trend_figure
from dashboard.filters import Filters, from_params

dash.register_page(__name__, path="/", name="Overview", title="Segmint · Overview", order=0)


def layout(**kwargs: Any) -> html.Div:
    filters = from_params(kwargs, allowed=auth.is_analyst())
    # The page is a function of the data version and the filters: built once, then cached.
    page: html.Div = context.cached("page-overview", filters, compute=lambda: _page(filters))
    return page


def _page(filters: Filters) -> html.Div:
    header = components.page_header("Overview", "Sales and customers month by month")
    if frames.data_span() is None:
        return html.Div([header, components.empty_state(
            f"{components.NO_DATA_MESSAGE}\n\n{components.NO_RUN_MESSAGE}")])
    since, until = filters.since, filters.until
    kpis, monthly = frames.sales(since, until)
    run = frames.published_run()
    notes: list[Any] = []
    first, last = frames.data_span() or (None, None)
    window = " – ".join(str(day) for day in frames.bounded_window(filters, first, last))
    run_text = f"published run #{run['id']}" if run else "no segmentation run yet"
    text = f"Window {window}: every transaction line, customers or not; {run_text}."
    if filters.classes or filters.segments:
        text += (" The class and segment filters do not apply here (they do on Products and "
                 "Segments).")
    notes.append(components.scope_note(text))
    if run is None:
        notes.append(components.empty_state(components.NO_RUN_MESSAGE,
                                            "Segments are not computed yet"))
    best = best_month(monthly, "revenue")
    cards = dbc.Row([
        components.kpi_card("Revenue (net)", components.money(kpis["revenue"]), ids.KPI_REVENUE,
                            f"best month {best}" if best else None),
        components.kpi_card("Orders", f"{kpis['orders']:,}", ids.KPI_ORDERS),
        components.kpi_card("Customers", f"{kpis['customers']:,}", ids.KPI_CUSTOMERS,
                            "with a purchase in the window"),
        components.kpi_card("Average order value", components.money(kpis["aov"]), ids.KPI_AOV),
    ])
    trends = dbc.Row([
        dbc.Col(components.card(components.graph(ids.TREND_REVENUE, trend_figure(
            monthly, "revenue", "Monthly revenue", money=True))), lg=6),
        dbc.Col(components.card(components.graph(ids.TREND_ORDERS, trend_figure(
            monthly, "orders", "Monthly orders"))), lg=6),
        dbc.Col(components.card(components.graph(ids.TREND_ACTIVE, trend_figure(
            monthly, "active_customers", "Active customers per month"))), lg=6),
        dbc.Col(components.card(components.graph(ids.TREND_NEW, trend_figure(
            monthly, "new_customers", "New customers per month (first purchase)"))), lg=6),
    ])
    return html.Div([header, *notes, cards, trends])
