"""What each offer brought, read from the store: the ledger's real rows, the lines that followed
them, attributed and estimated by engine.outcomes. The `outcomes` and `export offers` commands
and the Offers page share it, so they cannot disagree."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from engine.columns import OFFER_EXPORT_COLUMNS, OUTCOME_FIELDS
from engine.dates import last_day, utc_now
from engine.errors import SegmintError, one_line
from engine.kpis import segment_kpis
from engine.outcomes import (
    OutcomeInputError,
    attribute,
    check_offer_pass,
    estimate,
    with_decision_times,
)
from engine.rfm import REQUIRED_LINE_COLUMNS
from engine.settings import Settings
from engine.store import offer_results as offer_store
from engine.store import results as result_store
from engine.store import runs as run_store
from engine.store.lines_read import load_lines
from engine.values import plain

# The outcomes and the KPIs both read lines as RFM does (stock codes to drop non-products).
KPI_LINE_COLUMNS = REQUIRED_LINE_COLUMNS


class UnknownOfferError(SegmintError):
    """An offer id the ledger does not hold."""


@dataclass(frozen=True)
class Outcomes:
    attributed: pd.DataFrame  # one row per ledger row: decided_at, converted, revenue_after, ...
    by_offer: pd.DataFrame  # engine.outcomes.estimate per offer
    by_class: pd.DataFrame  # per offer and class
    attribution_days: int


def load_outcomes(engine: Engine, settings: Settings, *,
                  offer_id: str | None = None) -> Outcomes:
    """Attributed ledger rows and estimates, for every offer or one (UnknownOfferError when the
    ledger has no real row of it)."""
    days = settings.outcomes.attribution_days
    ledger = offer_store.offer_ledger(engine=engine, offer_id=offer_id)
    if offer_id is not None and ledger.empty:
        known = offer_store.offer_ids(engine=engine)
        listed = ", ".join(known) if known else "none yet"
        raise UnknownOfferError(f"no offer {offer_id!r} in the ledger (offers: {listed})")
    ledger = with_decision_times(ledger)
    if ledger.empty:
        lines = pd.DataFrame(columns=list(KPI_LINE_COLUMNS))
    else:
        first = ledger["decided_at"].min().date()
        last = (ledger["decided_at"].max() + pd.Timedelta(days=days)).date()
        lines = load_lines(engine=engine, since=first, until=last,
                           columns=KPI_LINE_COLUMNS)
    codes = list(settings.ingest.non_product_codes)
    attributed = attribute(ledger, lines, attribution_days=days, non_product_codes=codes)
    attributed["customer_class"] = attributed["customer_class"].fillna("(no class)")
    return Outcomes(attributed=attributed, by_offer=estimate(attributed),
                    by_class=estimate(attributed, by=("offer_id", "customer_class")),
                    attribution_days=days)


def offer_export(outcomes: Outcomes) -> pd.DataFrame:
    """`segmint export offers`: OFFER_EXPORT_COLUMNS, one row per ledger row, times in UTC."""
    out = outcomes.attributed.copy()
    out["decided_at"] = pd.to_datetime(out["decided_at"], utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    return out.reindex(columns=OFFER_EXPORT_COLUMNS)


def record_offer_pass_file(engine: Engine, path: Path) -> tuple[int, int]:
    """Record a past offer pass file in the ledger (engine.store.offer_results.record_past_pass);
    returns (rows added, rows already there). A file it cannot use is one line."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise OutcomeInputError(f"{path}: file not found") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise OutcomeInputError(f"{path}: cannot be read as CSV: {one_line(exc)}") from None
    rows = check_offer_pass(frame, source=str(path))
    return offer_store.record_past_pass(engine=engine, rows=rows, now=utc_now())


def run_kpis(engine: Engine, settings: Settings, *, run_id: int) -> pd.DataFrame:
    """`segmint export kpis` for a run: its segments, over its window and as_of."""
    run = run_store.get_run(engine=engine, run_id=run_id)
    assert run is not None, run_id  # the caller resolved the run id (runs.resolve_run)
    as_of = run["as_of"]
    segments = result_store.read_segments(engine=engine, run_id=run_id)
    lines = load_lines(engine=engine, until=last_day(None, as_of),
                       columns=KPI_LINE_COLUMNS)
    return segment_kpis(lines, segments, as_of=as_of, since=run.get("since"),
                        non_product_codes=list(settings.ingest.non_product_codes))


def _plain(value: object) -> object:
    """A JSON-safe value (engine.values.plain), floats rounded to 6 places."""
    value = plain(value)
    return round(value, 6) if isinstance(value, float) else value


def outcome_records(estimates: pd.DataFrame) -> list[dict[str, object]]:
    """`segmint outcomes --json`: per offer, exactly OUTCOME_FIELDS."""
    return [{field: _plain(row[field]) for field in OUTCOME_FIELDS}
            for _, row in estimates.iterrows()]


def _rate(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"


def _interval(row: pd.Series) -> str:
    if math.isnan(row["uplift_ci_low"]):
        return "no interval (a group is empty)"
    return (f"{row['uplift']:+.1f} points (95 % CI {row['uplift_ci_low']:.1f} to "
            f"{row['uplift_ci_high']:.1f})")


def _money_interval(row: pd.Series, currency: str) -> str:
    if math.isnan(row["revenue_uplift_ci_low"]):
        return f"{currency}{row['revenue_uplift']:,.2f}, no interval"
    return (f"{currency}{row['revenue_uplift']:,.2f}, 95 % CI {currency}"
            f"{row['revenue_uplift_ci_low']:,.2f} to {currency}"
            f"{row['revenue_uplift_ci_high']:,.2f} (Welch)")


def outcome_lines(outcomes: Outcomes, *, currency: str = "£") -> list[str]:
    """The text `segmint outcomes` prints."""
    if outcomes.by_offer.empty:
        return ["no offers in the ledger yet: `segmint send-offers` records them (with "
                "notifications.holdout_share above 0, a holdout group beside each offer)"]
    lines = [f"conversion: a purchase within {outcomes.attribution_days} days after the send "
             "(treatment) or the assignment (holdout)"]
    for _, row in outcomes.by_offer.iterrows():
        lines += [
            f"offer {row['offer_id']}: treatment {row['treatment']:,} "
            f"({_rate(row['conversion_treatment'])} converted), holdout {row['holdout']:,} "
            f"({_rate(row['conversion_holdout'])})",
            f"  uplift {_interval(row)}; smallest detectable {row['mde']:.1f} points",
            f"  revenue per customer {currency}{row['revenue_per_customer_treatment']:,.2f} vs "
            f"{currency}{row['revenue_per_customer_holdout']:,.2f} (difference "
            f"{_money_interval(row, currency)}); incremental revenue "
            f"{currency}{row['incremental_revenue']:,.0f}",
            f"  verdict: {row['verdict']}",
        ]
        classes = outcomes.by_class[outcomes.by_class["offer_id"] == row["offer_id"]]
        for _, part in classes.iterrows():
            lines.append(f"  {part['customer_class']}: treatment {part['treatment']:,}, holdout "
                         f"{part['holdout']:,}, {_interval(part)}")
    return lines
