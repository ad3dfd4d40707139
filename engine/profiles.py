"""Cluster profiles: size, centroid R/F/M in original units, revenue share, tier, persona,
strategy.

Personas come from the centroid's recency, frequency and monetary levels relative to all
customers, never from the cluster's index, so a rerun gives the same cluster the same persona.
Each level is the centroid on the clustering's scale (log1p, negative net spend as 0) in standard
deviations from all customers' mean: `high` at or above `personas.high`, `low` at or below
`personas.low`, else `mid`; for recency "high" means recent (fewer days). The first rule of
`personas.rules` whose level lists hold the centroid's three levels names it (config as data).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from engine.clustering import scale_features
from engine.columns import PROFILE_COLUMNS
from engine.rfm import require_columns
from engine.settings import LEVELS, PersonaSettings


def level(z: float, settings: PersonaSettings) -> str:
    """'high', 'mid' or 'low' for a centroid `z` standard deviations from all customers."""
    if z >= settings.high:
        return "high"
    if z <= settings.low:
        return "low"
    return "mid"


def persona_of(r_level: str, f_level: str, m_level: str, settings: PersonaSettings) -> str:
    """The first rule matching the three levels (settings validation ensures one does)."""
    rule = settings.rule_for(r_level, f_level, m_level)
    if rule is not None:
        return rule.name
    raise ValueError(f"no persona rule matches levels r={r_level} f={f_level} m={m_level}")


def centroid_levels(segments: pd.DataFrame, settings: PersonaSettings) -> pd.DataFrame:
    """Per cluster (sorted): r_level, f_level, m_level and the z of each."""
    # The clustering's own scaled features: a centroid's z is its members' mean of them.
    scaled = pd.DataFrame(scale_features(segments[["recency_days", "frequency", "monetary"]]),
                          columns=["r", "f", "m"])
    z = scaled.groupby(segments["cluster"].to_numpy(), sort=True).mean().rename_axis("cluster")
    z["r"] = -z["r"]  # fewer days since the last purchase = more recent = higher
    levels = pd.DataFrame(index=z.index)
    for part in ("r", "f", "m"):
        levels[f"{part}_level"] = z[part].map(lambda value: level(float(value), settings))
        levels[f"{part}_z"] = z[part].round(3)
    return levels


def cluster_profiles(segments: pd.DataFrame, strategies: Mapping[str, str],
                     personas: PersonaSettings | None = None) -> pd.DataFrame:
    """One row per cluster. The centroid is the members' mean in original units (days, invoices,
    net spend); revenue is the cluster's net spend and revenue_share its part of the total net
    spend (0 when the total is not positive). The strategy is the text for the cluster's
    persona ("" when the config has none: never another persona's or a tier's text, so a lapsed
    cluster is never advised like a recent one)."""
    require_columns(segments, ["cluster", "value_tier", "recency_days", "frequency", "monetary"],
                    "segments frame")
    personas = personas or PersonaSettings()
    grouped = segments.groupby("cluster", sort=True)
    profiles = pd.DataFrame({
        "value_tier": grouped["value_tier"].first(),
        "size": grouped.size(),
        "recency_days": grouped["recency_days"].mean().round(1),
        "frequency": grouped["frequency"].mean().round(2),
        "monetary": grouped["monetary"].mean().round(2),
        "revenue": grouped["monetary"].sum().round(2),
    })
    levels = centroid_levels(segments, personas)
    for part in ("r", "f", "m"):
        profiles[f"{part}_level"] = levels[f"{part}_level"]
    profiles["persona"] = [persona_of(r, f, m, personas) for r, f, m in
                           zip(profiles["r_level"], profiles["f_level"], profiles["m_level"],
                               strict=True)]
    profiles = profiles.reset_index()
    total = float(segments["monetary"].sum())
    profiles["revenue_share"] = (profiles["revenue"] / total).round(4) if total > 0 else 0.0
    profiles["strategy"] = profiles["persona"].map(lambda name: strategies.get(name, ""))
    profiles["size"] = profiles["size"].astype("int64")
    profiles["cluster"] = profiles["cluster"].astype("int64")
    return profiles[PROFILE_COLUMNS]


__all__ = ["LEVELS", "PROFILE_COLUMNS", "centroid_levels", "cluster_profiles", "level",
           "persona_of"]
