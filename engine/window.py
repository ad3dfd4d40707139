"""RFM and classes recomputed for an analyst's date window, reusing a published run's clusters
(pure: frames in, frames out; the dashboard's recomputed windows call it).

The run's k-means model is its centroids in standardised log space (diagnostics
"centroids_scaled") plus the scaling, which is recovered exactly from the run's own stored
customer rows (mean and population standard deviation of log1p of each feature). Each customer of
the window goes to the nearest centroid, so cluster numbers and value tiers keep the run's meaning
and nothing is refitted.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from engine.classes import classify
from engine.clustering import feature_frame, scale_features
from engine.columns import SEGMENT_COLUMNS
from engine.kpis import CustomerKpis, customer_kpis
from engine.pipeline import window_lines
from engine.rfm import coded_customer_lines, rfm_segments
from engine.settings import Settings

log = logging.getLogger(__name__)


def _logged(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(frame.clip(lower=0).to_numpy(dtype=float))


def assign_clusters(window_rfm: pd.DataFrame, run_rows: pd.DataFrame,
                    diagnostics: Mapping[str, Any], features: Sequence[str]) -> np.ndarray:
    """Nearest run centroid for each window customer (in the run's scaled feature space)."""
    centroids_by_cluster = diagnostics.get("centroids_scaled") or {}
    clusters = sorted(int(key) for key in centroids_by_cluster)
    if not clusters:
        raise ValueError("the run stored no centroids")
    centroids = np.array([centroids_by_cluster[str(c)] if str(c) in centroids_by_cluster
                          else centroids_by_cluster[c] for c in clusters], dtype=float)
    reusable_scale = "tenure" not in features and not run_rows.empty
    if reusable_scale:
        reference = _logged(feature_frame(run_rows, features))
        mean, std = reference.mean(axis=0), reference.std(axis=0)
        std[std == 0] = 1.0
        matrix = (_logged(feature_frame(window_rfm, features)) - mean) / std
    else:
        log.info("window scaled on its own data (feature 'tenure' is not stored per customer)")
        matrix = scale_features(feature_frame(window_rfm, features))
    distances = ((matrix[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return np.array(clusters)[distances.argmin(axis=1)]


@dataclass(frozen=True)
class WindowFigures:
    """A recomputed window's customer rows and, when asked for, its customers' KPI figures
    (engine.kpis.customer_kpis; None for an empty window or when not asked)."""

    rows: pd.DataFrame
    kpis: CustomerKpis | None


def window_segments(history: pd.DataFrame, customers: pd.DataFrame | None, *,
                    run: Mapping[str, Any], run_rows: pd.DataFrame, settings: Settings,
                    since: date | None, until: date | None) -> pd.DataFrame:
    """`export segments` rows for the window [since, until] of the lines in history.

    history holds every line up to the window's end (earlier lines tell the classes about first
    purchases and earlier spend; later ones are left out). as_of is the day after the window's
    last line, as for `segmint run --since --until`.
    """
    return window_figures(history, customers, run=run, run_rows=run_rows, settings=settings,
                          since=since, until=until).rows


def window_figures(history: pd.DataFrame, customers: pd.DataFrame | None, *,
                   run: Mapping[str, Any], run_rows: pd.DataFrame, settings: Settings,
                   since: date | None, until: date | None,
                   kpis_as_of: date | None = None) -> WindowFigures:
    """window_segments' rows and, with kpis_as_of, the customer_kpis of [since, kpis_as_of)
    from the same coding of the history (the Segments page shows both: one pass over the
    window customers' history instead of two)."""
    codes = list(settings.ingest.non_product_codes)
    history, window, as_of = window_lines(history, as_of=None, since=since, until=until)
    if as_of is None or not window["customer_id"].notna().any():
        return WindowFigures(pd.DataFrame(columns=SEGMENT_COLUMNS), None)
    # The history's customers coded once, for the window's RFM, the classes' growth and the KPIs.
    coded = coded_customer_lines(history, codes)
    window_coded = coded if since is None else coded.since(pd.Timestamp(since))
    segments = rfm_segments(window, as_of=as_of, settings=settings.rfm, non_product_codes=codes,
                            coded=window_coded)
    if segments.empty:
        return WindowFigures(pd.DataFrame(columns=SEGMENT_COLUMNS), None)
    diagnostics = run.get("diagnostics") or {}
    features = diagnostics.get("features") or list(settings.clustering.features)
    segments["cluster"] = assign_clusters(segments, run_rows, diagnostics, features)
    # Keyed by cluster number; Hashable because pandas types the keys of to_dict() below so.
    tiers: dict[Hashable, str] = {int(cluster): tier for cluster, tier
                                  in (diagnostics.get("tiers") or {}).items()}
    if not tiers and not run_rows.empty:
        tiers = run_rows.groupby("cluster")["value_tier"].first().to_dict()
    segments["value_tier"] = segments["cluster"].map(tiers).fillna(settings.clustering.tiers[1])
    segments["customer_class"] = classify(
        segments, history, customers, as_of=as_of, settings=settings.classes,
        tier_names=settings.clustering.tiers, non_product_codes=codes, coded=coded)
    rows = segments[SEGMENT_COLUMNS]
    if not rows["customer_id"].is_monotonic_increasing:  # rfm_table's rows are in id order
        rows = rows.sort_values("customer_id")
    rows = rows.reset_index(drop=True)
    kpis = None if kpis_as_of is None else customer_kpis(coded, as_of=kpis_as_of, since=since)
    return WindowFigures(rows, kpis)
