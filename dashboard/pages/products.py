"""Products: top products by revenue, quantity and customers; top products per class and cluster."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import html

from dashboard import auth, components, context, frames, ids
from dashboard.figures import (
    customers_per_product_figure,
    empty_figure,
    grouped_products_figure,
    top_products_figure,
)
from dashboard.filters import Filters, from_params

dash.register_page(__name__, path="/products", name="Products", title="Segmint · Products",
                   order=1)


def layout(**kwargs: Any) -> html.Div:
    filters = from_params(kwargs, allowed=auth.is_analyst())
    page: html.Div = context.cached("page-products", filters, compute=lambda: _page(filters))
    return page


def _page(filters: Filters) -> html.Div:
    header = components.page_header("Products", "What sells, to how many customers, and to whom")
    if frames.data_span() is None:
        return html.Div([header, components.empty_state(components.NO_DATA_MESSAGE)])
    scope = frames.scope(filters)
    since, until = (filters.since, filters.until) if scope.run is None else (scope.since,
                                                                               scope.until)
    selecting = scope.run is not None and bool(filters.classes or filters.segments)
    products = frames.selected_products(scope, filters) if selecting else frames.products(
        since, until)
    note = scope.describe() + _selection_text(scope, filters, selecting)
    if products.empty:
        empty = ("No product lines in this window (the data may have no stock codes: product "
                 "figures are skipped).")
        if selecting:
            empty = "No customer of this selection bought a product in this window."
        return html.Div([header, components.scope_note(note),
                         components.empty_state(empty, "No products")])
    if scope.run_id is not None:
        by_class = grouped_products_figure(
            frames.products_by_group(scope, filters, "customer_class"),
            "Top products per customer class", "class")
        by_cluster = grouped_products_figure(
            frames.products_by_group(scope, filters, "cluster"),
            "Top products per cluster", "Cluster")
    else:
        by_class = empty_figure(components.NO_RUN_MESSAGE, "Top products per customer class")
        by_cluster = empty_figure(components.NO_RUN_MESSAGE, "Top products per cluster")
    return html.Div([
        header,
        components.scope_note(note),
        dbc.Row([
            dbc.Col(components.card(components.graph(ids.TOP_REVENUE, top_products_figure(
                products, "revenue", "Top products by revenue"))), lg=6),
            dbc.Col(components.card(components.graph(ids.TOP_QUANTITY, top_products_figure(
                products, "quantity", "Top products by quantity"))), lg=6),
            dbc.Col(components.card(components.graph(ids.TOP_CUSTOMERS, top_products_figure(
                products, "customers", "Top products by number of customers"))), lg=6),
            dbc.Col(components.card(components.graph(ids.CUSTOMERS_PER_PRODUCT,
                                                     customers_per_product_figure(
                                                         products, "Customers per product"))),
                    lg=6),
            dbc.Col(components.card(components.graph(ids.TOP_BY_CLASS, by_class)), lg=6),
            dbc.Col(components.card(components.graph(ids.TOP_BY_CLUSTER, by_cluster)), lg=6),
        ]),
    ])


def _selection_text(scope: frames.Scope, filters: Filters, selecting: bool) -> str:
    """What the class and segment filters do on this page (each customer's class and cluster
    come from the same rows as the Segments page: the run's, or recomputed for the window)."""
    if scope.run is None:
        return ""
    source = "these recomputed" if scope.recomputed else f"run #{scope.run['id']}'s"
    text = f" Top products per class and per cluster use {source} classes and clusters."
    if selecting:
        chosen = "; ".join(part for part in (", ".join(filters.classes),
                                             ", ".join(filters.segments)) if part)
        text += (f" Filtered to the customers in {chosen}: every figure counts only their "
                 "lines (lines without a customer are left out).")
    return text
