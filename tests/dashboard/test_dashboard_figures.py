"""Figure builders and URL filters, without a browser or a database."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import figures
from dashboard.filters import Filters, from_params, from_search
from engine.phones import mask_phone

MONTHLY = pd.DataFrame({
    "month": ["2011-01", "2011-02", "2011-03"],
    "revenue": [100.0, 350.0, 200.0],
    "orders": [3, 9, 5],
    "active_customers": [2, 6, 4],
    "new_customers": [2, 4, 1],
})


def test_trend_marks_the_best_month() -> None:
    figure = figures.trend_figure(MONTHLY, "revenue", "Monthly revenue", money=True)
    line, best = figure.data
    assert list(line.x) == ["2011-01", "2011-02", "2011-03"]
    assert list(best.x) == ["2011-02"] and list(best.y) == [350.0]
    assert "best: 2011-02" in figure.layout.annotations[0].text
    assert figures.best_month(MONTHLY, "new_customers") == "2011-02"


def test_empty_frames_give_a_message_not_an_error() -> None:
    empty = MONTHLY.iloc[0:0]
    figure = figures.trend_figure(empty, "orders", "Monthly orders")
    assert figure.layout.annotations[0].text == "No transactions in this window"
    assert figures.best_month(empty, "orders") is None
    products = pd.DataFrame(columns=["stock_code", "description", "revenue", "quantity",
                                     "customers"])
    assert not figures.top_products_figure(products, "revenue", "Top").data
    assert not figures.sankey_figure(pd.DataFrame(columns=["source", "target", "customers"]),
                                     "t", "#1", "#2").data


def test_top_products_are_ordered_and_limited() -> None:
    products = pd.DataFrame({
        "stock_code": [f"P{i}" for i in range(15)],
        "description": [f"Product {i}" for i in range(15)],
        "revenue": [float(i) for i in range(15)],
        "quantity": [1.0] * 15,
        "customers": [1] * 15,
    })
    bar = figures.top_products_figure(products, "revenue", "Top", n=5).data[0]
    # Horizontal bars are drawn bottom-up: the largest comes last.
    assert list(bar.x) == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert bar.y[-1] == "Product 14 (P14)"


def test_diagnostic_scores_accept_the_stored_shapes() -> None:
    as_lists = {"chosen_k": 3, "scores": {"k": [2, 3, 4], "inertia": [9.0, 5.0, 4.0],
                                          "silhouette": [0.4, 0.5, 0.45]}}
    as_records = {"scores": [{"k": 3, "inertia": 5.0}, {"k": 2, "inertia": 9.0}]}
    by_metric = {"inertia": {"2": 9.0, "3": 5.0}}
    for diagnostics in (as_lists, as_records, by_metric):
        scores = figures.diagnostic_scores(diagnostics)
        assert list(scores["k"]) == sorted(scores["k"]) and 2 in set(scores["k"])
        assert float(scores.loc[scores["k"] == 3, "inertia"].iloc[0]) == 5.0
    assert list(figures.diagnostic_scores({}).columns) == ["k"]


def test_elbow_and_silhouette_mark_the_chosen_k() -> None:
    scores = figures.diagnostic_scores({"scores": {"k": [2, 3, 4], "inertia": [9.0, 5.0, 4.0],
                                                   "silhouette": [0.4, 0.5, 0.45]}})
    elbow = figures.elbow_figure(scores, 3)
    assert list(elbow.data[0].y) == [9.0, 5.0, 4.0] and list(elbow.data[1].x) == [3]
    silhouette = figures.silhouette_figure(scores, 3)
    assert list(silhouette.data[1].y) == [0.5]
    missing = figures.silhouette_figure(scores.drop(columns=["silhouette"]), 3)
    assert not missing.data


def test_sankey_links_match_the_flows() -> None:
    flows = pd.DataFrame({"source": ["High value", "High value", "Not in run"],
                          "target": ["High value", "Ordinary", "New"],
                          "customers": [5, 2, 3]})
    sankey = figures.sankey_figure(flows, "t", "#1", "#2").data[0]
    assert isinstance(sankey, go.Sankey)
    labels = list(sankey.node.label)
    assert labels == ["High value (#1)", "Not in run (#1)", "High value (#2)", "New (#2)",
                      "Ordinary (#2)"]
    assert sum(sankey.link.value) == 10
    assert not figures.sankey_figure(flows, "t", "#1", "#1").data  # same run twice


def test_segment_and_scatter_figures() -> None:
    rows = pd.DataFrame({
        "customer_id": ["a", "b", "c"], "recency_days": [1, 30, 300], "frequency": [9, 3, 1],
        "monetary": [900.0, 90.0, -5.0], "cluster": [0, 1, 2],
        "value_tier": ["High value", "Mid value", "Low value"],
    })
    scatter = figures.cluster_scatter_figure(rows, "Clusters")
    assert [trace.name for trace in scatter.data] == [
        "High value (cluster 0)", "Mid value (cluster 1)", "Low value (cluster 2)"]
    summary = pd.DataFrame({"customer_class": ["New", "Ordinary"], "customers": [4, 9],
                            "monetary": [40.0, 900.0]})
    bars = figures.segment_figure(summary, "customer_class", "Classes")
    assert list(bars.data[0].x) == [4, 9] and list(bars.data[1].x) == [40.0, 900.0]


def test_scatter_samples_each_cluster_in_proportion_and_says_so() -> None:
    sizes = {0: 300, 1: 1200, 2: 3}
    rows = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(sum(sizes.values()))],
        "recency_days": range(sum(sizes.values())), "frequency": 2, "monetary": 10.0,
        "cluster": [c for c, n in sizes.items() for _ in range(n)],
        "value_tier": [f"tier {c}" for c, n in sizes.items() for _ in range(n)],
    })
    scatter = figures.cluster_scatter_figure(rows, "Clusters", max_points=300)
    drawn = {trace.name: len(trace.x) for trace in scatter.data}
    assert drawn == {"tier 0 (cluster 0)": 60, "tier 1 (cluster 1)": 240, "tier 2 (cluster 2)": 1}
    assert "301 of 1,503 customers shown" in scatter.layout.title.text
    again = figures.cluster_scatter_figure(rows, "Clusters", max_points=300)
    assert [list(t.text) for t in again.data] == [list(t.text) for t in scatter.data]
    whole = figures.cluster_scatter_figure(rows.head(200), "Clusters", max_points=300)
    assert sum(len(trace.x) for trace in whole.data) == 200
    assert whole.layout.title.text == "Clusters"


def test_figures_carry_only_the_small_template() -> None:
    figure = figures.trend_figure(MONTHLY, "revenue", "Revenue", money=True).to_dict()
    template = figure["layout"]["template"]
    assert "data" not in template  # plotly's default template (7 KB) is not merged in
    assert template["layout"]["xaxis"]["automargin"] is True
    assert template["layout"]["plot_bgcolor"] == "white"


def test_grouped_products_treemap() -> None:
    top = pd.DataFrame({"group": [0, 0, 1], "stock_code": ["A", "B", "A"],
                        "description": ["Apple", None, "Apple"], "revenue": [10.0, 5.0, 7.0],
                        "customers": [1, 1, 1]})
    treemap = figures.grouped_products_figure(top, "Per cluster", "Cluster").data[0]
    assert list(treemap.parents) == ["", "", "Cluster 0", "Cluster 0", "Cluster 1"]
    assert sum(treemap.values) == 22.0


def test_mask_phone_hides_the_middle() -> None:
    assert mask_phone("+447700900123") == "+44******0123"
    assert mask_phone("07700 900123") == "***** **0123"  # an invalid number kept as written
    assert mask_phone("1234") == "****"
    # Short numbers and text that is no phone number show nothing.
    assert mask_phone("123456789") == "*********"
    assert mask_phone("+33612345678") == "+33*********"
    assert mask_phone("john@example.com") == "*" * 16
    assert mask_phone("call me") == "*" * 7
    assert mask_phone("") == ""
    assert mask_phone(None) is None
    assert "7700900" not in (mask_phone("+447700900123") or "")


names = st.lists(st.text(alphabet="ABCDEFGHIJ klmnop-", min_size=1, max_size=12)
                 .filter(lambda s: s.strip() == s and s), max_size=4, unique=True)


@given(since=st.none() | st.dates(date(2009, 1, 1), date(2012, 12, 31)),
       until=st.none() | st.dates(date(2009, 1, 1), date(2012, 12, 31)),
       classes=names, segments=names)
def test_filters_survive_the_url(since: date | None, until: date | None, classes: list[str],
                                 segments: list[str]) -> None:
    if since and until and since > until:
        since, until = until, since
    filters = Filters(since=since, until=until, classes=tuple(sorted(classes)),
                      segments=tuple(sorted(segments)))
    assert from_search(filters.to_query(), allowed=True) == filters


def test_managers_urls_are_ignored() -> None:
    params = {"since": "2011-01-01", "classes": "New"}
    assert from_params(params, allowed=False) == Filters()
    assert from_params(params, allowed=True).since == date(2011, 1, 1)
    assert from_params({"since": "not a date"}, allowed=True) == Filters()


def test_import_trace_modules_loads_every_trace_type_the_figures_draw() -> None:
    """`segmint serve` calls it before forking the workers: each trace type used in
    dashboard/figures.py must be imported by it (a fresh interpreter, so nothing is loaded yet)."""
    source = Path(figures.__file__).read_text()
    used = sorted(set(re.findall(r"go\.([A-Z]\w*)\(", source)) - {"Figure"})
    code = ("import sys, dashboard.figures as f; f.import_trace_modules(); "
            f"print(*[name for name in {used!r} "
            "if 'plotly.graph_objs._' + name.lower() not in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(figures.__file__).parent.parent)
    assert used and "Sankey" in used
    assert result.stdout.strip() == "", f"not imported: {result.stdout}"


def test_run_labels_never_show_nan_or_a_float_count() -> None:
    """A run row without k or a customer count (pandas makes such a column float, NaN where
    missing) reads '?', and 3.0 reads 3."""
    from dashboard.components import count
    from dashboard.frames import Scope

    assert [count(value) for value in (4335, 3.0, float("nan"), None)] == \
        ["4,335", "3", "?", "?"]
    runs = pd.DataFrame({"id": [3, 2], "k": [3, None], "n_customers": [4335, None]})
    rows = runs.to_dict("records")
    assert rows[0]["k"] == 3.0 and pd.isna(rows[1]["n_customers"])  # what the page gets
    texts = [Scope(run={**row, "as_of": date(2011, 12, 10)}, since=None, until=None,
                   recomputed=False).describe() for row in rows]
    assert texts[0].startswith("Run #3 (k = 3, as of 2011-12-10, 4,335 customers)")
    assert texts[1].startswith("Run #2 (k = ?, as of 2011-12-10, ? customers)")
    assert not any("nan" in text or "3.0" in text for text in texts)


def test_uplift_figure_draws_the_interval_and_the_mde() -> None:
    estimates = pd.DataFrame({
        "offer_id": ["spring", "welcome"], "uplift": [6.1, -1.0], "uplift_ci_low": [2.0, -5.0],
        "uplift_ci_high": [10.2, 3.0], "mde": [4.0, 9.9], "treatment": [900, 90],
        "holdout": [100, 10]})
    figure = figures.uplift_figure(estimates, "What the offers brought")
    dots, mde = figure.data
    assert list(dots.y) == ["welcome", "spring"]  # the first offer on top
    assert list(dots.error_x.array) == pytest.approx([4.0, 4.1])
    assert list(dots.error_x.arrayminus) == pytest.approx([4.0, 4.1])
    assert list(mde.x) == [9.9, 4.0]
    no_holdout = estimates.assign(uplift_ci_low=float("nan"), uplift_ci_high=float("nan"))
    assert figures.uplift_figure(no_holdout, "t").layout.annotations[0].text.startswith("No offer")


def test_conversion_curve_figure_has_one_line_per_group() -> None:
    from engine.outcomes import conversion_curve

    attributed = pd.DataFrame({"group": ["treatment", "treatment", "holdout"],
                               "days_to_convert": [0.5, float("nan"), 2.0]})
    figure = figures.conversion_curve_figure(conversion_curve(attributed, attribution_days=3),
                                             "Converted since the send")
    assert [trace.name for trace in figure.data] == ["treatment", "holdout"]
    assert list(figure.data[0].y) == [0.0, 0.5, 0.5, 0.5]
    assert list(figure.data[1].y) == [0.0, 0.0, 1.0, 1.0]
