"""Cluster profiles: size, centroid R/F/M in original units, revenue share, tier, strategy."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from engine.columns import PROFILE_COLUMNS
from engine.rfm import require_columns


def cluster_profiles(segments: pd.DataFrame, strategies: Mapping[str, str]) -> pd.DataFrame:
    """One row per cluster. The centroid is the members' mean in original units (days, invoices,
    net spend); revenue is the cluster's net spend and revenue_share its part of the total net
    spend (0 when the total is not positive). The strategy is the text for the cluster's tier."""
    require_columns(segments, ["cluster", "value_tier", "recency_days", "frequency", "monetary"],
                    "segments frame")
    grouped = segments.groupby("cluster", sort=True)
    profiles = pd.DataFrame({
        "value_tier": grouped["value_tier"].first(),
        "size": grouped.size(),
        "recency_days": grouped["recency_days"].mean().round(1),
        "frequency": grouped["frequency"].mean().round(2),
        "monetary": grouped["monetary"].mean().round(2),
        "revenue": grouped["monetary"].sum().round(2),
    }).reset_index()
    total = float(segments["monetary"].sum())
    profiles["revenue_share"] = (profiles["revenue"] / total).round(4) if total > 0 else 0.0
    profiles["strategy"] = profiles["value_tier"].map(lambda tier: strategies.get(tier, ""))
    profiles["size"] = profiles["size"].astype("int64")
    profiles["cluster"] = profiles["cluster"].astype("int64")
    return profiles[PROFILE_COLUMNS]
