"""Pure figure builders: DataFrame (or dict) in, plotly Figure out. No database, no Dash, no I/O."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from html import escape
from typing import Any, SupportsInt

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# A small template: a named one ("plotly_white") is deep-copied and validated on every figure,
# which costs more than drawing the figure. It is assigned, not merged (update_layout would merge
# it into plotly's default template and send those 7 KB with every figure); the few settings of
# the default that matter here (automargin, closest hover, 3D panes) are repeated in it.
_AXIS = {"gridcolor": "#edf0f5", "zerolinecolor": "#dfe3eb", "linecolor": "#dfe3eb",
         "automargin": True, "title": {"standoff": 15}}
_SCENE_AXIS = {"backgroundcolor": "#f4f6fa", "gridcolor": "white", "showbackground": True,
               "zerolinecolor": "white", "gridwidth": 2}
TEMPLATE = {"layout": {
    "font": {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "color": "#344050"},
    "paper_bgcolor": "white", "plot_bgcolor": "white", "colorway": [
        "#2c7be5", "#00a389", "#f6a609", "#e5532c", "#8e5cd9", "#39afd1", "#6c757d"],
    "hovermode": "closest", "hoverlabel": {"align": "left"},
    "xaxis": _AXIS, "yaxis": _AXIS,
    "scene": {"xaxis": _SCENE_AXIS, "yaxis": _SCENE_AXIS, "zaxis": _SCENE_AXIS},
}}
ACCENT = "#2c7be5"
BEST = "#e5532c"
TIER_COLOURS = {"High value": "#2c7be5", "Mid value": "#00a389", "Low value": "#f6a609"}
PALETTE = ["#2c7be5", "#00a389", "#f6a609", "#e5532c", "#8e5cd9", "#39afd1", "#6c757d",
           "#d63384", "#20c997", "#fd7e14"]


def plotly_text(value: Any) -> str:
    """Text from the data as Plotly should show it: literally. Plotly reads a subset of HTML in
    titles, tick labels, hover text, legends and treemap or Sankey labels (a product called
    '<a href="...">GIFT</a>' became a live link), and shows escaped entities as the characters,
    so every string that comes from data goes through here before it enters a figure."""
    return escape(str(value), quote=False)


def _layout(figure: go.Figure, title: str, height: int = 320, note: str | None = None) -> go.Figure:
    """Template, size and title (escaped; the optional note goes small under it)."""
    figure.layout.template = TEMPLATE
    text = plotly_text(title) + (f"<br><sup>{plotly_text(note)}</sup>" if note else "")
    figure.update_layout(title={"text": text, "x": 0.01, "font": {"size": 15}},
                         height=height, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return figure


def empty_figure(message: str, title: str = "") -> go.Figure:
    """A blank chart that says why it is blank (used instead of an error)."""
    figure = go.Figure()
    figure.add_annotation(text=plotly_text(message), showarrow=False,
                          font={"size": 14, "color": "#6c757d"}, xref="paper", yref="paper",
                          x=0.5, y=0.5)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _layout(figure, title)


def best_month(monthly: pd.DataFrame, column: str) -> str | None:
    """The month with the highest value of column (earliest on ties), or None when empty."""
    if monthly.empty or monthly[column].isna().all():
        return None
    return str(monthly.set_index("month")[column].idxmax())


def trend_figure(monthly: pd.DataFrame, column: str, title: str, *,
                 money: bool = False) -> go.Figure:
    """Monthly line of one column with its best month marked."""
    if monthly.empty:
        return empty_figure("No transactions in this window", title)
    figure = go.Figure(go.Scatter(
        x=monthly["month"].map(plotly_text), y=monthly[column], mode="lines+markers",
        name=plotly_text(title),
        line={"color": ACCENT, "width": 2},
        hovertemplate="%{x}: %{y:,.0f}<extra></extra>"))
    best = best_month(monthly, column)
    if best is not None:
        value = float(monthly.loc[monthly["month"] == best, column].iloc[0])
        shown = plotly_text(best)
        label = f"best: {shown}<br>{'£' if money else ''}{value:,.0f}"
        figure.add_trace(go.Scatter(x=[shown], y=[value], mode="markers", name="best month",
                                    marker={"color": BEST, "size": 13, "symbol": "star"},
                                    hoverinfo="skip"))
        figure.add_annotation(x=shown, y=value, text=label, showarrow=True, arrowhead=2, ay=-35,
                              font={"color": BEST})
    figure.update_layout(showlegend=False)
    figure.update_xaxes(type="category")
    if money:
        figure.update_yaxes(tickprefix="£")
    return _layout(figure, title)


def top_products_figure(products: pd.DataFrame, metric: str, title: str, n: int = 10) -> go.Figure:
    """Horizontal bars of the n products with the largest metric (revenue, quantity, customers)."""
    if products.empty:
        return empty_figure("No product lines in this window", title)
    top = products.sort_values([metric, "stock_code"], ascending=[False, True]).head(n)
    labels = [_product_label(code, text) for code, text in zip(top["stock_code"],
                                                               top["description"], strict=True)]
    figure = go.Figure(go.Bar(x=top[metric][::-1], y=labels[::-1], orientation="h",
                              marker_color=ACCENT, hovertemplate="%{y}: %{x:,.0f}<extra></extra>"))
    return _layout(figure, title, height=360)


def customers_per_product_figure(products: pd.DataFrame, title: str) -> go.Figure:
    """Distribution of how many distinct customers bought each product."""
    if products.empty:
        return empty_figure("No product lines in this window", title)
    figure = go.Figure(go.Histogram(x=products["customers"], nbinsx=40, marker_color=ACCENT,
                                    hovertemplate="%{x} customers: %{y} products<extra></extra>"))
    figure.update_xaxes(title="customers who bought the product")
    figure.update_yaxes(title="products")
    return _layout(figure, title)


def grouped_products_figure(top: pd.DataFrame, title: str, group_label: str) -> go.Figure:
    """Treemap: each group (class or cluster) with its top products sized by revenue."""
    top = top[top["revenue"] > 0] if not top.empty else top
    if top.empty:
        return empty_figure("No segmented customers bought products in this window", title)
    groups = [plotly_text(f"{group_label} {g}" if isinstance(g, int | np.integer) else g)
              for g in top["group"]]
    leaf_ids = [f"{g}/{code}" for g, code in zip(groups, top["stock_code"], strict=True)]
    roots = sorted(set(groups))
    figure = go.Figure(go.Treemap(
        ids=roots + leaf_ids,
        labels=roots + [_product_label(c, d, 28) for c, d in zip(top["stock_code"],
                                                                  top["description"], strict=True)],
        parents=[""] * len(roots) + groups,
        values=[0.0] * len(roots) + top["revenue"].astype(float).tolist(),
        branchvalues="remainder",
        hovertemplate="%{label}: £%{value:,.0f}<extra></extra>"))
    return _layout(figure, title, height=420)


def segment_figure(summary: pd.DataFrame, by: str, title: str) -> go.Figure:
    """Customers and net value per group, side by side."""
    if summary.empty:
        return empty_figure("No customers in this selection", title)
    ordered = summary.sort_values("customers", ascending=True)
    names = ordered[by].map(plotly_text)
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.03,
                           subplot_titles=("customers", "net value"))
    figure.add_trace(go.Bar(x=ordered["customers"], y=names, orientation="h", marker_color=ACCENT,
                            hovertemplate="%{y}: %{x:,} customers<extra></extra>"), row=1, col=1)
    figure.add_trace(go.Bar(x=ordered["monetary"], y=names, orientation="h", marker_color="#00a389",
                            hovertemplate="%{y}: £%{x:,.0f}<extra></extra>"), row=1, col=2)
    figure.update_layout(showlegend=False)
    return _layout(figure, title, height=max(300, 40 + 32 * len(ordered)))


def scatter_sample(results: pd.DataFrame, max_points: int, seed: int = 0) -> pd.DataFrame:
    """At most about max_points rows, each cluster keeping its share (at least one row each);
    the same rows every time for the same input (fixed seed)."""
    if len(results) <= max_points:
        return results
    fraction = max_points / len(results)
    parts = [group.sample(max(1, round(len(group) * fraction)), random_state=seed)
             for _, group in results.groupby("cluster", sort=True)]
    return pd.concat(parts)


def _cluster_number(label: Hashable) -> int:
    """A cluster number taken from a groupby key (an int or a numpy integer) as an int."""
    if not isinstance(label, SupportsInt):
        raise TypeError(f"cluster {label!r} is not a number")
    return int(label)


def cluster_scatter_figure(results: pd.DataFrame, title: str, max_points: int = 1500,
                           seed: int = 0) -> go.Figure:
    """Recency, frequency and monetary of customers, coloured by cluster (named by tier).

    Above max_points customers it draws a fixed sample in proportion to each cluster and says so
    under the title (a 3D scatter of every customer is slow to send and to draw, and no clearer).
    """
    if results.empty:
        return empty_figure("No customers in this selection", title)
    points = scatter_sample(results, max_points, seed)
    sampled = len(points) < len(results)
    note = (f"{len(points):,} of {len(results):,} customers shown, sampled in proportion to "
            "each cluster") if sampled else None
    figure = go.Figure()
    for (cluster, tier), group in points.groupby(["cluster", "value_tier"], sort=True):
        colour = PALETTE[_cluster_number(cluster) % len(PALETTE)]
        figure.add_trace(go.Scatter3d(
            x=group["recency_days"], y=group["frequency"],
            z=group["monetary"].astype(float).clip(lower=1).round(2),
            mode="markers", name=f"{plotly_text(tier)} (cluster {cluster})",
            marker={"size": 3, "opacity": 0.7, "color": colour},
            text=group["customer_id"].map(plotly_text),
            hovertemplate="%{text}<br>R %{x} days, F %{y}, M £%{z:,.0f}<extra></extra>"))
    figure.update_layout(scene={"xaxis": {"title": "recency (days)"},
                                "yaxis": {"title": "frequency", "type": "log"},
                                "zaxis": {"title": "monetary (£)", "type": "log"}},
                         legend={"orientation": "h", "y": -0.05})
    figure = _layout(figure, title, height=480, note=note)
    if sampled:
        figure.update_layout(margin={"t": 70})
    return figure


def diagnostic_scores(diagnostics: Mapping[str, Any] | None) -> pd.DataFrame:
    """The per-k model-selection scores of a run as a frame with a `k` column.

    Accepts the shapes a run can store: a list of per-k records ({"k": 2, "inertia": ...}),
    a mapping metric -> {k: value}, or a mapping k -> {metric: value}.
    """
    if not diagnostics:
        return pd.DataFrame(columns=["k"])
    for key in ("scores", "k_scores", "candidates", "selection", "k_selection"):
        value = diagnostics.get(key)
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            return _sorted_by_k(pd.DataFrame(value))
        if isinstance(value, Mapping) and value:
            return diagnostic_scores(value)
    metric_maps = {name: values for name, values in diagnostics.items()
                   if isinstance(values, Mapping) and values
                   and all(_is_k(key) for key in values)}
    if metric_maps:
        frame = pd.DataFrame({name: {int(k): v for k, v in values.items()}
                              for name, values in metric_maps.items()})
        return _sorted_by_k(frame.rename_axis("k").reset_index())
    if all(_is_k(key) for key in diagnostics) and all(isinstance(v, Mapping)
                                                     for v in diagnostics.values()):
        frame = pd.DataFrame.from_dict({int(k): dict(v) for k, v in diagnostics.items()},
                                       orient="index")
        return _sorted_by_k(frame.rename_axis("k").reset_index())
    lists = {name: values for name, values in diagnostics.items()
             if isinstance(values, list) and values and not isinstance(values[0], Mapping)}
    if "k" in lists or "ks" in lists or "k_values" in lists:
        k_values = lists.pop("k", None) or lists.pop("ks", None) or lists.pop("k_values")
        columns = {name: values for name, values in lists.items() if len(values) == len(k_values)}
        return _sorted_by_k(pd.DataFrame({"k": k_values, **columns}))
    return pd.DataFrame(columns=["k"])


def _is_k(key: Any) -> bool:
    return str(key).isdigit()


def _sorted_by_k(frame: pd.DataFrame) -> pd.DataFrame:
    if "k" not in frame.columns:
        return pd.DataFrame(columns=["k"])
    frame = frame.copy()
    frame["k"] = frame["k"].astype(int)
    return frame.sort_values("k").reset_index(drop=True)


def _metric_column(scores: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lowered = {column.lower(): column for column in scores.columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def k_score_figure(scores: pd.DataFrame, metric_names: tuple[str, ...], title: str,
                   chosen_k: int | None, y_title: str) -> go.Figure:
    """One model-selection score against k with the chosen k marked (elbow, silhouette)."""
    column = _metric_column(scores, metric_names)
    if column is None or scores[column].isna().all():
        return empty_figure("This run stored no such score", title)
    data = scores[["k", column]].dropna()
    figure = go.Figure(go.Scatter(x=data["k"], y=data[column], mode="lines+markers",
                                  line={"color": ACCENT}, name=y_title,
                                  hovertemplate="k=%{x}: %{y:,.3f}<extra></extra>"))
    if chosen_k is not None and chosen_k in set(data["k"]):
        value = float(data.loc[data["k"] == chosen_k, column].iloc[0])
        figure.add_trace(go.Scatter(x=[chosen_k], y=[value], mode="markers", name="chosen k",
                                    marker={"color": BEST, "size": 14, "symbol": "star"}))
        figure.add_annotation(x=chosen_k, y=value, text=f"k = {chosen_k}", showarrow=True,
                              arrowhead=2, ay=-30, font={"color": BEST})
    figure.update_layout(showlegend=False)
    figure.update_xaxes(title="k (clusters)", dtick=1)
    figure.update_yaxes(title=y_title)
    return _layout(figure, title)


def elbow_figure(scores: pd.DataFrame, chosen_k: int | None) -> go.Figure:
    return k_score_figure(scores, ("inertia", "sse", "wcss", "elbow", "distortion"),
                          "Elbow: within-cluster sum of squares", chosen_k, "inertia")


def silhouette_figure(scores: pd.DataFrame, chosen_k: int | None) -> go.Figure:
    return k_score_figure(scores, ("silhouette", "silhouette_score", "silhouette_avg"),
                          "Silhouette score", chosen_k, "silhouette")


def import_trace_modules() -> None:
    """Builds a tiny figure of each trace type drawn here. plotly imports a trace type's modules
    and validators the first time one is built (the first Sankey with nodes and links: about
    0.14 s); `segmint serve` calls this in the master, so the forked workers start with them
    instead of the first user of a figure made in a callback (a new pair of runs) waiting."""
    for trace in (go.Bar(x=[0], y=[0]), go.Histogram(x=[0]), go.Scatter(x=[0], y=[0]),
                  go.Scatter3d(x=[0], y=[0], z=[0]), go.Treemap(labels=["a"], parents=[""]),
                  go.Sankey(node={"label": ["a", "b"]},
                            link={"source": [0], "target": [1], "value": [1]})):
        go.Figure(trace).to_dict()


def sankey_figure(flows: pd.DataFrame, title: str, left: str, right: str) -> go.Figure:
    """Customers flowing from each group of the earlier run to each group of the later run."""
    if flows.empty:
        return empty_figure("Pick two runs with customers to see transitions", title)
    if left == right:
        return empty_figure("Pick two different runs to see how customers moved", title)
    sources = sorted(flows["source"].astype(str).unique())
    targets = sorted(flows["target"].astype(str).unique())
    source_index = {name: i for i, name in enumerate(sources)}
    target_index = {name: len(sources) + i for i, name in enumerate(targets)}
    labels = [plotly_text(f"{name} ({left})") for name in sources] + [
        plotly_text(f"{name} ({right})") for name in targets]
    colours = {name: PALETTE[i % len(PALETTE)]
               for i, name in enumerate(sorted(set(sources) | set(targets)))}
    figure = go.Figure(go.Sankey(
        node={"label": labels, "pad": 14, "thickness": 14,
              "color": [colours[name] for name in sources + targets]},
        link={"source": [source_index[s] for s in flows["source"].astype(str)],
              "target": [target_index[t] for t in flows["target"].astype(str)],
              "value": flows["customers"].astype(int).tolist()}))
    return _layout(figure, title, height=460)


def offer_status_figure(by_status: pd.DataFrame, title: str) -> go.Figure:
    if by_status.empty:
        return empty_figure("No offer messages yet", title)
    ordered = by_status.sort_values("messages", ascending=False)
    figure = go.Figure(go.Bar(x=ordered["status"].map(plotly_text), y=ordered["messages"],
                              marker_color=ACCENT,
                              hovertemplate="%{x}: %{y:,}<extra></extra>"))
    return _layout(figure, title)


def _product_label(code: Any, description: Any, width: int = 34) -> str:
    """'DESCRIPTION (code)', shortened to width, escaped for Plotly (see plotly_text)."""
    text = str(description).strip() if isinstance(description, str) and description else str(code)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return plotly_text(f"{text} ({code})" if text != str(code) else text)


GROUP_COLOURS = {"treatment": ACCENT, "holdout": "#6c757d"}


def uplift_figure(estimates: pd.DataFrame, title: str) -> go.Figure:
    """Dot and whisker per offer: the uplift in points with its 95 % interval, a zero line,
    and the MDE as a hollow mark (estimates: engine.outcomes.estimate's columns)."""
    usable = estimates.dropna(subset=["uplift_ci_low", "uplift_ci_high"])
    if usable.empty:
        return empty_figure("No offer with both a treatment and a holdout group yet", title)
    ordered = usable.iloc[::-1]  # first offer on top
    labels = ordered["offer_id"].astype(str).map(plotly_text)
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=ordered["uplift"], y=labels, mode="markers", name="uplift (95 % interval)",
        marker={"size": 11, "color": ACCENT},
        error_x={"type": "data", "symmetric": False, "color": ACCENT, "thickness": 2,
                 "array": ordered["uplift_ci_high"] - ordered["uplift"],
                 "arrayminus": ordered["uplift"] - ordered["uplift_ci_low"]},
        customdata=np.column_stack([ordered["uplift_ci_low"], ordered["uplift_ci_high"],
                                    ordered["treatment"], ordered["holdout"]]),
        hovertemplate="%{y}: %{x:+.1f} points (%{customdata[0]:.1f} to %{customdata[1]:.1f})"
                      "<br>treatment %{customdata[2]:,}, holdout %{customdata[3]:,}"
                      "<extra></extra>"))
    figure.add_trace(go.Scatter(
        x=ordered["mde"], y=labels, mode="markers", name="smallest detectable (MDE)",
        marker={"symbol": "line-ns-open", "size": 16, "color": BEST},
        hovertemplate="%{y}: MDE %{x:.1f} points<extra></extra>"))
    figure.add_vline(x=0, line_color="#344050", line_width=1)
    figure.update_xaxes(title_text="uplift in conversion, points (treatment - holdout)")
    figure.update_layout(legend={"orientation": "h", "y": -0.3})
    return _layout(figure, title, height=160 + 50 * len(ordered))


def conversion_curve_figure(curve: pd.DataFrame, title: str) -> go.Figure:
    """Cumulative conversion since the send (treatment) or the assignment (holdout), per day
    (curve: engine.outcomes.conversion_curve's columns)."""
    if curve.empty or curve["customers"].max() == 0:
        return empty_figure("No customers in this offer yet", title)
    figure = go.Figure()
    for group, rows in curve.groupby("group", sort=False):
        if rows["customers"].iloc[0] == 0:
            continue
        figure.add_trace(go.Scatter(
            x=rows["day"], y=rows["rate"], mode="lines+markers", name=str(group),
            line={"shape": "hv", "color": GROUP_COLOURS.get(str(group), ACCENT)},
            customdata=rows[["converted", "customers"]].to_numpy(),
            hovertemplate=f"{group}, day %{{x}}: %{{y:.1%}} "
                          "(%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>"))
    figure.update_xaxes(title_text="days since the send / assignment", dtick=1)
    figure.update_yaxes(title_text="converted", tickformat=".0%", rangemode="tozero")
    figure.update_layout(legend={"orientation": "h", "y": -0.3})
    return _layout(figure, title)
