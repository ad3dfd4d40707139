"""Did the offers work? Holdout groups, attributed conversions and uplift estimates; pure functions.

SPEC.md "Outcomes". Every offer pass keeps a random holdout: a share of the customers each offer
would reach is assigned to `holdout` and never messaged for that offer. Comparing the two groups
answers what raw conversion rates cannot (offers go to the best customers, who buy anyway).

- Assignment (`assign_group`): a customer's group for an offer is a pure function of the customer
  id, the offer id and a salt (SHA-256, never Python's per-process `hash()`), so it is the same in
  every pass, process and restart: a customer keeps their group for an offer.
- Attribution (`attribute`): a ledger row converts when its customer makes a purchase (a line
  that is not a return) in (decided_at, decided_at + attribution_days]; `revenue_after` is the
  customer's net value (purchases minus returns) in that window. decided_at is the send for the
  treatment group and the assignment for the holdout. Lines loaded later count when they arrive:
  attribution is computed on reading, never stored.
- Estimates (`estimate`), per offer or per offer and class:
  * uplift = conversion rate of treatment minus holdout, in percentage points, with Newcombe's
    hybrid score interval (Newcombe 1998, method 10: Wilson intervals per group combined), from
    statsmodels' `confint_proportions_2indep(method="newcomb")`;
  * revenue uplift per customer with a Welch interval (unequal variances; t quantile from scipy
    with the Welch-Satterthwaite degrees of freedom, the same interval as
    `scipy.stats.ttest_ind(equal_var=False).confidence_interval()`, computed from group
    summaries so that many offers are estimated at once);
  * incremental revenue = revenue uplift per customer x treated customers;
  * mde: the smallest uplift (points) a two-sided test at alpha 0.05 detects with 80 % power for
    these group sizes and the holdout's conversion rate as baseline. Closed form on Cohen's
    arcsine scale, h = (z(1 - alpha/2) + z(power)) * sqrt(1/n_t + 1/n_h), turned back into a rate
    difference above the baseline: this is statsmodels' `NormalIndPower` solved for the effect
    size (less the far tail, below 1e-6 at these sizes; the tests check the two agree).

Conversion rates are fractions (0.12); uplift, its interval and mde are percentage points (6.1).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from engine.columns import OUTCOME_FIELDS
from engine.errors import SegmintError
from engine.rfm import require_columns
from engine.settings import ATTRIBUTION_DAYS_RANGE, MAX_HOLDOUT_SHARE

TREATMENT: Final = "treatment"
HOLDOUT: Final = "holdout"
GROUPS: Final = (TREATMENT, HOLDOUT)
ALPHA: Final = 0.05
POWER: Final = 0.80

# What `estimate` adds beyond the contract (the page and the text output use them).
EXTRA_FIELDS: Final = [
    "converted_treatment", "converted_holdout", "revenue_uplift", "revenue_uplift_ci_low",
    "revenue_uplift_ci_high", "customers_needed", "verdict",
]
ATTRIBUTION_COLUMNS: Final = ("customer_id", "offer_id", "group", "decided_at")
ATTRIBUTION_LINE_COLUMNS: Final = ("customer_id", "ts", "amount", "is_return")
_HASH_SPACE: Final = float(1 << 64)


class OutcomeInputError(SegmintError):
    """A holdout share, attribution window or frame the outcome functions cannot use."""


def check_holdout_share(share: float) -> float:
    if not (isinstance(share, int | float) and 0.0 <= float(share) <= MAX_HOLDOUT_SHARE):
        raise OutcomeInputError(
            f"holdout_share must be between 0 and {MAX_HOLDOUT_SHARE} (0 disables), got {share!r}")
    return float(share)


def check_attribution_days(days: int) -> int:
    low, high = ATTRIBUTION_DAYS_RANGE
    if isinstance(days, bool) or not isinstance(days, int) or not low <= days <= high:
        raise OutcomeInputError(
            f"attribution_days must be a whole number of days from {low} to {high}, "
            f"got {days!r}")
    return days


def check_offer_pass(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """A past offer pass as read from a file (customer_id, offer_id, pass_id, group,
    decided_at): the columns, groups and times checked, ids as text, times aware UTC."""
    columns = ["customer_id", "offer_id", "pass_id", "group", "decided_at"]
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise OutcomeInputError(f"{source}: required column(s) {', '.join(missing)} missing")
    out = frame[columns].copy()
    for position, column in enumerate(columns):
        empty = out[column].isna() | (out[column].astype(str).str.strip() == "")
        if empty.any():
            line = int(np.flatnonzero(empty.to_numpy())[0]) + 2  # the header is line 1
            raise OutcomeInputError(f"{source}: line {line}: {column} is empty")
        if position < 4:
            out[column] = out[column].astype(str).str.strip()
    wrong = ~out["group"].isin(GROUPS)
    if wrong.any():
        line = int(np.flatnonzero(wrong.to_numpy())[0]) + 2
        raise OutcomeInputError(f"{source}: line {line}: group must be treatment or holdout, "
                                f"got {out['group'].iloc[line - 2]!r}")
    moments = pd.to_datetime(out["decided_at"], utc=True, errors="coerce", format="ISO8601")
    if moments.isna().any():
        line = int(np.flatnonzero(moments.isna().to_numpy())[0]) + 2
        raise OutcomeInputError(f"{source}: line {line}: decided_at is not a date and time: "
                                f"{out['decided_at'].iloc[line - 2]!r}")
    out["decided_at"] = moments
    return out


# Assignment ----------------------------------------------------------------------------------

def holdout_draw(customer_id: str, offer_id: str, *, salt: str) -> float:
    """A number in [0, 1), uniform over customers, fixed for (customer, offer, salt)."""
    text = "\x1f".join((salt, str(offer_id), str(customer_id))).encode("utf-8")
    digest = hashlib.sha256(text).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE


def assign_group(customer_id: str, offer_id: str, *, salt: str, holdout_share: float) -> str:
    """'holdout' for about `holdout_share` of the customers of an offer, else 'treatment'."""
    share = check_holdout_share(holdout_share)
    draw = holdout_draw(customer_id, offer_id, salt=salt)
    return HOLDOUT if draw < share else TREATMENT


# Attribution ---------------------------------------------------------------------------------

def with_decision_times(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger rows (group, created_at, sent_at) with decided_at: the send for the treatment
    (the moment Twilio accepted the message, else the claim), the assignment for the holdout."""
    require_columns(ledger, ("group", "created_at", "sent_at"), "ledger frame")
    out = ledger.copy()
    created = pd.to_datetime(out["created_at"], utc=True)
    sent = pd.to_datetime(out["sent_at"], utc=True)
    out["decided_at"] = created.where((out["group"] == HOLDOUT) | sent.isna(), sent)
    return out


def _naive_utc(values: pd.Series) -> pd.Series:
    """Aware or naive moments (naive ones are UTC already) as naive UTC datetime64[ns]."""
    moments = pd.to_datetime(values, utc=True)
    return pd.Series(moments, index=values.index).dt.tz_localize(None).astype("datetime64[ns]")


def attribute(ledger: pd.DataFrame, lines: pd.DataFrame, *, attribution_days: int,
              non_product_codes: Sequence[str] = ()) -> pd.DataFrame:
    """The ledger with `converted` (bool), `revenue_after` (net value in the window) and
    `days_to_convert` (days from decided_at to the first purchase in the window, else NaN).

    ledger: one row per customer and offer (customer_id, offer_id, group, decided_at; other
    columns are kept). lines: customer_id, ts, amount, is_return (and stock_code: lines with a
    non-product code, such as postage, do not count); a return's amount always subtracts.
    Times are compared in UTC (naive times are taken to be UTC)."""
    require_columns(ledger, ATTRIBUTION_COLUMNS, "ledger frame")
    require_columns(lines, ATTRIBUTION_LINE_COLUMNS, "lines frame")
    days = check_attribution_days(attribution_days)
    out = ledger.reset_index(drop=True).copy()
    out["customer_id"] = out["customer_id"].astype(str)
    start = _naive_utc(out["decided_at"])
    window = pd.DataFrame({"row": np.arange(len(out)), "customer_id": out["customer_id"],
                           "start": start, "end": start + pd.Timedelta(days=days)})
    usable = lines["customer_id"].notna()
    if non_product_codes and "stock_code" in lines.columns:
        usable &= ~lines["stock_code"].isin(list(non_product_codes))
    kept = lines.loc[usable, list(ATTRIBUTION_LINE_COLUMNS)].copy()
    kept["customer_id"] = kept["customer_id"].astype(str)
    kept["ts"] = _naive_utc(kept["ts"])
    is_return = kept["is_return"].astype(bool)
    kept["net"] = np.where(is_return, -kept["amount"].abs(), kept["amount"])
    kept["purchase"] = ~is_return
    joined = window.merge(kept[["customer_id", "ts", "net", "purchase"]], on="customer_id")
    joined = joined[(joined["ts"] > joined["start"]) & (joined["ts"] <= joined["end"])]
    revenue = joined.groupby("row")["net"].sum()
    purchases = joined[joined["purchase"]]
    first = purchases.groupby("row")["ts"].min()
    out["converted"] = out.index.isin(first.index)
    out["revenue_after"] = revenue.reindex(out.index, fill_value=0.0).astype(float).round(2)
    delay = (first - window["start"].reindex(first.index)).dt.total_seconds() / 86400.0
    out["days_to_convert"] = delay.reindex(out.index).astype(float)
    return out


def conversion_curve(attributed: pd.DataFrame, *, attribution_days: int) -> pd.DataFrame:
    """Cumulative conversion per group, day 0 .. attribution_days since the send (treatment) or
    the assignment (holdout): columns day, group, customers, converted, rate."""
    require_columns(attributed, ("group", "days_to_convert"), "attributed frame")
    rows = []
    for group in GROUPS:
        members = attributed[attributed["group"] == group]
        delays = np.sort(members["days_to_convert"].dropna().to_numpy())
        for day in range(attribution_days + 1):
            converted = int(np.searchsorted(delays, day, side="right"))
            rate = converted / len(members) if len(members) else math.nan
            rows.append((day, group, len(members), converted, rate))
    return pd.DataFrame(rows, columns=["day", "group", "customers", "converted", "rate"])


# Estimates -----------------------------------------------------------------------------------

def uplift_interval(converted_t: ArrayLike, n_t: ArrayLike, converted_h: ArrayLike,
                    n_h: ArrayLike, *, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for p_t - p_h (fractions); NaN where a group is empty."""
    from statsmodels.stats.proportion import confint_proportions_2indep  # heavy: lazy import

    ct, nt = np.asarray(converted_t, float), np.asarray(n_t, float)
    ch, nh = np.asarray(converted_h, float), np.asarray(n_h, float)
    empty = (nt <= 0) | (nh <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = confint_proportions_2indep(
            ct, np.where(empty, 1.0, nt), ch, np.where(empty, 1.0, nh),
            method="newcomb", compare="diff", alpha=alpha)
    low = np.where(empty, np.nan, np.asarray(low, float))
    high = np.where(empty, np.nan, np.asarray(high, float))
    return low, high


def welch_interval(mean_t: ArrayLike, var_t: ArrayLike, n_t: ArrayLike, mean_h: ArrayLike,
                   var_h: ArrayLike, n_h: ArrayLike, *,
                   alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Welch's interval for mean_t - mean_h from group means, sample variances (ddof 1) and
    sizes; NaN where a group has fewer than two customers or both variances are zero."""
    from scipy import stats

    nt, nh = np.asarray(n_t, float), np.asarray(n_h, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        vt, vh = np.asarray(var_t, float) / nt, np.asarray(var_h, float) / nh
        se = np.sqrt(vt + vh)
        df = (vt + vh) ** 2 / (vt ** 2 / (nt - 1) + vh ** 2 / (nh - 1))
        half = stats.t.ppf(1 - alpha / 2, df) * se
    diff = np.asarray(mean_t, float) - np.asarray(mean_h, float)
    usable = (nt >= 2) & (nh >= 2) & (se > 0)
    return np.where(usable, diff - half, np.nan), np.where(usable, diff + half, np.nan)


def _z_sum(alpha: float, power: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def minimum_detectable_effect(n_t: ArrayLike, n_h: ArrayLike, baseline: ArrayLike, *,
                              alpha: float = ALPHA, power: float = POWER) -> np.ndarray:
    """The smallest rise of the conversion rate above `baseline` (fractions) that a two-sided
    test at `alpha` detects with `power` for groups of n_t and n_h (see the module notes)."""
    nt, nh = np.asarray(n_t, float), np.asarray(n_h, float)
    base = np.clip(np.nan_to_num(np.asarray(baseline, float), nan=0.0), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = _z_sum(alpha, power) * np.sqrt(1.0 / nt + 1.0 / nh)
    angle = np.minimum(np.arcsin(np.sqrt(base)) + h / 2, np.pi / 2)
    return np.where((nt > 0) & (nh > 0), np.sin(angle) ** 2 - base, np.nan)


def customers_needed(rate_t: ArrayLike, rate_h: ArrayLike, n_t: ArrayLike, n_h: ArrayLike,
                     *, alpha: float = ALPHA, power: float = POWER) -> np.ndarray:
    """How many more customers an offer needs (both groups, at the current split) before the
    observed difference of rates would be detected at `alpha` with `power`; NaN when there is
    no difference to detect or a group is empty."""
    nt, nh = np.asarray(n_t, float), np.asarray(n_h, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.abs(2 * np.arcsin(np.sqrt(np.asarray(rate_t, float)))
                   - 2 * np.arcsin(np.sqrt(np.asarray(rate_h, float))))
        ratio = nh / nt
        needed_t = (_z_sum(alpha, power) / h) ** 2 * (1 + 1 / ratio)
        more = np.ceil(np.maximum(needed_t * (1 + ratio) - (nt + nh), 0.0))
    return np.where((nt > 0) & (nh > 0) & (h > 1e-9), more, np.nan)


def estimate(attributed: pd.DataFrame, *, by: Sequence[str] = ("offer_id",),
             alpha: float = ALPHA, power: float = POWER, currency: str = "£") -> pd.DataFrame:
    """One row per `by` group (an offer, or an offer and class): OUTCOME_FIELDS (with every `by`
    column first) and EXTRA_FIELDS. Rates are fractions; uplift, its interval and mde are
    percentage points; revenue in the lines' currency."""
    keys = list(by)
    require_columns(attributed, (*keys, "group", "converted", "revenue_after"), "attributed frame")
    frame = attributed[[*keys, "group", "converted", "revenue_after"]].copy()
    frame["converted"] = frame["converted"].astype(bool)
    frame["revenue_after"] = frame["revenue_after"].astype(float)
    stats = frame.groupby([*keys, "group"], sort=True, dropna=False).agg(
        n=("converted", "size"), conversions=("converted", "sum"),
        revenue_mean=("revenue_after", "mean"), revenue_var=("revenue_after", "var"))
    wide = stats.unstack("group")
    columns = keys + [field for field in OUTCOME_FIELDS if field not in keys] + EXTRA_FIELDS
    if wide.empty:
        return pd.DataFrame(columns=columns)

    def part(name: str, group: str) -> np.ndarray:
        if (name, group) not in wide.columns:
            return np.zeros(len(wide)) if name in ("n", "conversions") else np.full(len(wide),
                                                                                  np.nan)
        values = wide[(name, group)].to_numpy(dtype=float)
        return np.nan_to_num(values, nan=0.0) if name in ("n", "conversions") else values

    n_t, n_h = part("n", TREATMENT), part("n", HOLDOUT)
    c_t, c_h = part("conversions", TREATMENT), part("conversions", HOLDOUT)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_t = np.where(n_t > 0, c_t / n_t, np.nan)
        rate_h = np.where(n_h > 0, c_h / n_h, np.nan)
    low, high = uplift_interval(c_t, n_t, c_h, n_h, alpha=alpha)
    mean_t, mean_h = part("revenue_mean", TREATMENT), part("revenue_mean", HOLDOUT)
    r_low, r_high = welch_interval(mean_t, part("revenue_var", TREATMENT), n_t, mean_h,
                                   part("revenue_var", HOLDOUT), n_h, alpha=alpha)
    revenue_uplift = mean_t - mean_h
    out = wide.index.to_frame(index=False)
    out = out.assign(
        treatment=n_t.astype(int), holdout=n_h.astype(int),
        conversion_treatment=rate_t, conversion_holdout=rate_h,
        uplift=(rate_t - rate_h) * 100, uplift_ci_low=low * 100, uplift_ci_high=high * 100,
        revenue_per_customer_treatment=mean_t, revenue_per_customer_holdout=mean_h,
        incremental_revenue=revenue_uplift * n_t,
        mde=minimum_detectable_effect(n_t, n_h, rate_h, alpha=alpha, power=power) * 100,
        converted_treatment=c_t.astype(int), converted_holdout=c_h.astype(int),
        revenue_uplift=revenue_uplift, revenue_uplift_ci_low=r_low, revenue_uplift_ci_high=r_high,
        customers_needed=customers_needed(rate_t, rate_h, n_t, n_h, alpha=alpha, power=power),
    )
    out["verdict"] = [verdict(row, currency=currency) for row in out.itertuples(index=False)]
    return out[columns]


def _points(value: float) -> str:
    return f"{value:+.1f}"


def verdict(row: object, *, currency: str = "£") -> str:
    """A manager's reading of one estimate row (attributes as in `estimate`'s columns)."""
    n_t, n_h = int(getattr(row, "treatment")), int(getattr(row, "holdout"))  # noqa: B009
    if n_t == 0 or n_h == 0:
        missing = "holdout" if n_h == 0 else "treatment"
        return f"no {missing} group yet: nothing to compare"
    uplift, low, high = (float(getattr(row, name))
                         for name in ("uplift", "uplift_ci_low", "uplift_ci_high"))
    money = float(getattr(row, "incremental_revenue"))  # noqa: B009
    interval = f"{_points(uplift)} points ({low:.1f} to {high:.1f})"
    if low > 0:
        amount = f"about {currency}{abs(money):,.0f} {'more' if money >= 0 else 'less'}"
        return f"{interval}, {amount}"
    if high < 0:
        return (f"{interval}: fewer customers bought than without the offer, about "
                f"{currency}{abs(money):,.0f} {'less' if money <= 0 else 'more'}")
    needed = float(getattr(row, "customers_needed"))  # noqa: B009
    mde = float(getattr(row, "mde"))  # noqa: B009
    if uplift > 0 and math.isfinite(needed):
        return (f"no measurable effect yet: about {needed:,.0f} more customers needed to tell "
                f"{_points(uplift)} points from chance ({interval})")
    return (f"no measurable effect: {interval}; with these groups only an uplift above "
            f"{mde:.1f} points would show")
