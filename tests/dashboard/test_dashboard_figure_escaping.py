"""Text from the data never becomes markup in a figure (issue 19 item 10): Plotly reads a subset
of HTML in titles, tick labels, hover text, legends and treemap / Sankey labels, so a product
described as '<a href="http://e.co">GIFT</a>' rendered as a live link in the Products chart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard import figures

LINK = '<a href="http://e.co">GIFT</a>'
BOLD = "<b>VIP</b>"
IMAGE = "<img src=x onerror=alert(1)>"
# What the builders themselves may write: line breaks, the small note, hover's <extra>.
OWN_TAGS = {"<br>", "<sup>", "</sup>", "<extra>", "</extra>"}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _strings(value)
    elif hasattr(node, "tolist"):  # the arrays of a trace stay numpy arrays here
        yield from _strings(node.tolist())


def _markup_from_data(figure: go.Figure) -> list[str]:
    """Every string of the figure that holds a tag the builders did not write themselves."""
    import re

    found = []
    for text in _strings(figure.to_plotly_json()):
        tags = set(re.findall(r"<[^<>]*>", text)) - OWN_TAGS
        if tags or "<a" in text or "<img" in text:
            found.append(text)
    return found


def _shown(figure: go.Figure) -> str:
    return " ".join(_strings(figure.to_plotly_json()))


def test_every_figure_escapes_text_from_the_data() -> None:
    products = pd.DataFrame({"stock_code": ["85123A", "<i>X</i>"],
                             "description": [LINK, IMAGE], "revenue": [10.0, 5.0],
                             "quantity": [3, 1], "customers": [2, 1]})
    grouped = pd.DataFrame({"group": [BOLD, BOLD], "stock_code": ["85123A", "22423"],
                            "description": [LINK, "PLAIN"], "revenue": [10.0, 4.0],
                            "customers": [1, 1]})
    summary = pd.DataFrame({"customer_class": [BOLD, "Ordinary"], "customers": [4, 9],
                            "monetary": [40.0, 900.0]})
    rows = pd.DataFrame({"customer_id": [IMAGE, "c2", "c3"], "recency_days": [1, 30, 300],
                         "frequency": [9, 3, 1], "monetary": [900.0, 90.0, 5.0],
                         "cluster": [0, 1, 1], "value_tier": [BOLD, "Mid value", "Mid value"]})
    flows = pd.DataFrame({"source": [BOLD], "target": [LINK], "customers": [3]})
    monthly = pd.DataFrame({"month": ["<b>2011-01</b>", "2011-02"], "revenue": [9.0, 1.0]})
    statuses = pd.DataFrame({"status": [LINK, "sent"], "messages": [1, 2]})
    built = {
        "top products": figures.top_products_figure(products, "revenue", "Top by revenue"),
        "treemap": figures.grouped_products_figure(grouped, "Per class", "Class"),
        "segments": figures.segment_figure(summary, "customer_class", "Classes"),
        "scatter": figures.cluster_scatter_figure(rows, "Clusters"),
        "sankey": figures.sankey_figure(flows, f"Runs {BOLD}", "#1", "#2"),
        "trend": figures.trend_figure(monthly, "revenue", "Revenue", money=True),
        "offers": figures.offer_status_figure(statuses, "Offer messages"),
        "empty": figures.empty_figure(f"No data for {LINK}", f"Title {IMAGE}"),
    }
    for name, figure in built.items():
        assert _markup_from_data(figure) == [], name
    # ...and the text is still there, as characters (Plotly shows &lt; as <).
    assert "&lt;a href=\"http://e.co\"&gt;GIFT&lt;/a&gt;" in _shown(built["top products"])
    assert "&lt;b&gt;VIP&lt;/b&gt;" in _shown(built["treemap"])
    assert "&lt;img src=x onerror=alert(1)&gt;" in _shown(built["scatter"])


def test_plain_text_is_unchanged() -> None:
    assert figures.plotly_text("WHITE HANGING HEART T-LIGHT HOLDER") == (
        "WHITE HANGING HEART T-LIGHT HOLDER")
    assert figures.plotly_text("R&D <3") == "R&amp;D &lt;3"
