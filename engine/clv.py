"""Predictive customer value: BG/NBD (repeat purchases and dropout) and Gamma-Gamma (order value).

Pure functions: lines in, frames and plain dicts out, ``as_of`` always passed in.

- The data are purchase days (Fader, Hardie & Lee 2005): several invoices of one customer on one
  calendar day are one purchase. ``frequency`` = repeat purchase days (purchase days - 1),
  ``recency`` = time from the first to the last purchase day, ``T`` = time from the first purchase
  day to ``as_of``, in the time unit ("W" weeks or "D" days). ``monetary_value`` = the mean value
  of the repeat purchase days (the first purchase is left out, as in the Gamma-Gamma papers).
- Both models are fitted with pymc-marketing by maximum a posteriori under flat priors, which
  is maximum likelihood. Only the fit uses pymc: every per-customer figure is computed here in
  closed form from the four (three) point parameters, vectorised over customers, so memory grows
  with the customers only (never draws x customers).
- Customers without a repeat purchase, or first seen fewer than ``min_history_days`` before
  ``as_of``, get the model's conditional estimate, which the little history shrinks towards the
  population's; they are flagged ``history = "short"``. Customers without a repeat purchase get
  the population's mean order value, flagged ``order_value_source = "population"``.
- A fit that cannot be made (too few repeat buyers, the optimiser failing) is a note, never an
  error: the caller publishes everything else.
- The backtest (refit before ``as_of - backtest_days``, predictions against what happened, the
  calibration table) is engine/clv_backtest.py; ``customer_value`` runs it with the run's fit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from engine.rfm import CustomerLines, coded_customer_lines
from engine.settings import ClvSettings

log = logging.getLogger(__name__)

UNIT_DAYS = {"W": 7.0, "D": 1.0}
SUMMARY_COLUMNS = ["customer_id", "frequency", "recency", "T", "monetary_value"]
CLV_STEPS = 12  # monthly steps for the discounted 365-day value


class ClvFitError(Exception):
    """A model could not be fitted on these data (a note for the run, not an error)."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    @property
    def population_mean(self) -> float:
        """Mean order value of the population, p v / (q - 1); infinite when q <= 1."""
        return self.p * self.v / (self.q - 1) if self.q > 1 else math.inf


@dataclass
class ClvResult:
    """A run's CLV: per-customer rows (None when no fit), parameters, backtest, notes."""

    time_unit: str
    customers: pd.DataFrame | None
    bgnbd: BgNbdParams | None = None
    gamma_gamma: GammaGammaParams | None = None
    backtest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """The JSON the run stores and `segmint clv --json` prints (NaN/inf as null: PostgreSQL's
        json refuses them)."""
        from engine.values import json_safe

        return json_safe({
            "time_unit": self.time_unit,
            "bgnbd": None if self.bgnbd is None else rounded_params(vars(self.bgnbd)),
            "gamma_gamma": (None if self.gamma_gamma is None
                            else rounded_params(vars(self.gamma_gamma))),
            "n_customers": 0 if self.customers is None else len(self.customers),
            "backtest": self.backtest,
            "notes": list(self.notes),
            "seconds": dict(self.seconds),
        })


def rounded_params(values: dict[str, float]) -> dict[str, float]:
    """Fitted parameters as stored: six significant digits."""
    return {name: float(f"{value:.6g}") for name, value in values.items()}


# --- the purchase-day summary -------------------------------------------------------------------

def purchase_days(lines: pd.DataFrame, *, non_product_codes: Sequence[str] = (),
                  coded: CustomerLines | None = None) -> pd.DataFrame:
    """One row per customer and purchase day: customer_id (text), day (datetime64 midnight),
    value (the day's purchase value). Purchases are the lines RFM counts (a customer id, a
    product code) that are not returns (a line of value 0, a free item, is still a purchase).
    ``coded``: the same lines already as ``coded_customer_lines`` (a run has them), so nothing
    is copied or factorised again."""
    if coded is None:
        coded = coded_customer_lines(lines, non_product_codes)
    buy = ~coded.is_return & (coded.net >= 0)
    customer = coded.customer[buy].astype(np.int64)
    day = coded.ts[buy].astype("datetime64[D]").astype(np.int64)
    # One int64 key per (customer, day), in that order: the same rows as a groupby on the two
    # columns, in 1.6 CPU s instead of 2.4 at 10 M lines.
    first = int(day.min()) if len(day) else 0
    span = int(day.max()) - first + 1 if len(day) else 1
    grouped = pd.Series(coded.net[buy]).groupby(customer * span + (day - first), sort=True).sum()
    key = grouped.index.to_numpy(dtype=np.int64)
    return pd.DataFrame({"customer_id": coded.ids[key // span].astype(object),
                         "day": (key % span + first).astype("datetime64[D]")
                         .astype("datetime64[ns]"),
                         "value": grouped.to_numpy(dtype=float)})


def summarize_days(days: pd.DataFrame, *, as_of: date, time_unit: str = "W") -> pd.DataFrame:
    """The per-customer summary (SUMMARY_COLUMNS, sorted by customer_id) of the purchase days up
    to and including ``as_of`` (a run's lines end before it, or on it when until = as_of)."""
    unit = UNIT_DAYS[time_unit]
    as_of_ts = pd.Timestamp(as_of)
    days = days[days["day"] <= as_of_ts]
    if days.empty:
        return pd.DataFrame({"customer_id": pd.Series(dtype=object),
                             **{name: pd.Series(dtype=float) for name in SUMMARY_COLUMNS[1:]}})
    grouped = days.groupby("customer_id", sort=True)
    first = grouped["day"].min()
    last = grouped["day"].max()
    count = grouped["day"].size()
    total = grouped["value"].sum()
    first_value = days.loc[grouped["day"].idxmin(), ["customer_id", "value"]] \
        .set_index("customer_id")["value"]
    frequency = (count - 1).astype(np.int64)
    repeat_value = (total - first_value.reindex(total.index)).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_value / np.maximum(frequency, 1), 0.0)
    return pd.DataFrame({
        "customer_id": first.index.to_numpy(dtype=object),
        "frequency": frequency.to_numpy(),
        "recency": ((last - first).dt.days / unit).to_numpy(dtype=float),
        "T": ((as_of_ts - first).dt.days / unit).to_numpy(dtype=float),
        "monetary_value": monetary,
    })


def purchase_summary(lines: pd.DataFrame, *, as_of: date, time_unit: str = "W",
                     non_product_codes: Sequence[str] = ()) -> pd.DataFrame:
    """Lines -> the per-customer purchase-day summary as of ``as_of`` (see module doc)."""
    return summarize_days(purchase_days(lines, non_product_codes=non_product_codes),
                          as_of=as_of, time_unit=time_unit)


# --- closed forms on point parameters ------------------------------------------------------------

def _arrays(*values: Any) -> list[np.ndarray]:
    return [np.asarray(value, dtype=float) for value in values]


def _dropout_log_odds(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray,
                      T: np.ndarray) -> np.ndarray:
    """log of a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x) (-inf where x = 0): the odds that the
    customer has dropped out given the history."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        term = (r + x) * np.log((alpha + T) / (alpha + t_x)) \
            + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x > 0, term, -np.inf)


def p_alive(params: BgNbdParams, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """P(alive | x, t_x, T) (Fader, Hardie & Lee 2008, note 021)."""
    from scipy.special import expit  # here: `segmint export` / `clv` import this module

    x, t_x, T_ = _arrays(frequency, recency, T)
    return np.asarray(expit(-_dropout_log_odds(params, x, t_x, T_)))


def expected_purchases(params: BgNbdParams, t: Any, frequency: Any, recency: Any,
                       T: Any) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in the next ``t`` time units (equation 10)."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t_, x, t_x, T_ = _arrays(t, frequency, recency, T)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = t_ / (alpha + T_ + t_)
        shrink = np.exp((r + x) * np.log((alpha + T_) / (alpha + T_ + t_)))
        numerator = (a + b + x - 1) / (a - 1) * (1 - shrink * hyp2f1(r + x, b + x, a + b + x - 1,
                                                                     z))
        denominator = 1 + np.exp(_dropout_log_odds(params, x, t_x, T_))
        value = numerator / denominator
    return np.where(t_ > 0, value, 0.0)


def expected_order_value(params: GammaGammaParams, frequency: Any,
                         monetary_value: Any) -> np.ndarray:
    """E[M | x, mbar] = p (v + x mbar) / (p x + q - 1) (Fader, Hardie & Lee 2005b)."""
    x, m = _arrays(frequency, monetary_value)
    return (params.p * (params.v + x * m)) / (params.p * x + params.q - 1)


def discounted_value(params: BgNbdParams, order_value: np.ndarray, frequency: Any, recency: Any,
                     T: Any, *, horizon_days: float, annual_rate: float,
                     time_unit: str) -> np.ndarray:
    """Expected purchases in each of CLV_STEPS equal steps of the horizon, times the order value,
    discounted at the annual rate to the end of each step."""
    unit = UNIT_DAYS[time_unit]
    total = np.zeros(len(order_value))
    before = np.zeros(len(order_value))
    for step in range(1, CLV_STEPS + 1):
        days = horizon_days * step / CLV_STEPS
        cumulative = expected_purchases(params, days / unit, frequency, recency, T)
        total += (cumulative - before) / (1 + annual_rate) ** (days / 365.0)
        before = cumulative
    return total * order_value


def churn_risk(alive: np.ndarray, settings: ClvSettings) -> np.ndarray:
    return np.where(alive < settings.churn_high_below, "high",
                    np.where(alive < settings.churn_medium_below, "medium", "low")).astype(object)


def score_customers(summary: pd.DataFrame, bgnbd: BgNbdParams, gamma_gamma: GammaGammaParams,
                    *, settings: ClvSettings, population_order_value: float) -> pd.DataFrame:
    """Per customer: the export's CLV columns plus how much to trust each row (history,
    order_value_source), from point parameters (vectorised)."""
    unit = UNIT_DAYS[settings.time_unit]
    x = summary["frequency"].to_numpy(dtype=float)
    t_x = summary["recency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    repeat = x > 0
    value = np.full(len(summary), population_order_value)
    if repeat.any():
        value[repeat] = expected_order_value(gamma_gamma, x[repeat],
                                             summary["monetary_value"].to_numpy(float)[repeat])
    alive = p_alive(bgnbd, x, t_x, T)
    short = ~repeat | (T * unit < settings.min_history_days)
    out = pd.DataFrame({
        "customer_id": summary["customer_id"].to_numpy(dtype=object),
        "frequency": x.astype(np.int64),
        "recency": t_x,
        "T": T,
        "p_alive": alive,
        "expected_purchases_90d": expected_purchases(bgnbd, 90 / unit, x, t_x, T),
        "expected_purchases_365d": expected_purchases(bgnbd, 365 / unit, x, t_x, T),
        "expected_order_value": value,
        "clv_365d": discounted_value(bgnbd, value, x, t_x, T, horizon_days=365,
                                     annual_rate=settings.annual_discount_rate,
                                     time_unit=settings.time_unit),
        "churn_risk": churn_risk(alive, settings),
        "history": np.where(short, "short", "full").astype(object),
        "order_value_source": np.where(repeat, "gamma_gamma", "population").astype(object),
    })
    numeric = ["p_alive", "expected_purchases_90d", "expected_purchases_365d",
               "expected_order_value", "clv_365d"]
    out[numeric] = out[numeric].round(6)
    return out


# --- fitting (pymc-marketing, MAP under flat priors) ---------------------------------------------

def _quiet_libraries() -> None:
    """pymc, pytensor and arviz log at INFO on import and on every compile; a run says what it
    does itself."""
    for name in ("pymc", "pymc_marketing", "pytensor", "arviz"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _flat_priors(names: Sequence[str]) -> dict[str, Any]:
    from pymc_extras.prior import Prior

    return {name: Prior("HalfFlat") for name in names}


def _map_point(model: Any) -> dict[str, float]:
    posterior = model.idata.posterior
    return {name: float(posterior[name].values.reshape(-1)[0])
            for name in posterior.data_vars}


def _quiet_fit(model: Any, data: pd.DataFrame) -> None:
    """MAP fit without progress bars; optimiser failures become ClvFitError."""
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            model.fit(data=data, method="map", progressbar=False)
        except (ValueError, FloatingPointError, RuntimeError, ArithmeticError) as exc:
            raise ClvFitError(f"the optimiser failed: {exc}") from None


def fit_bgnbd(summary: pd.DataFrame) -> BgNbdParams:
    """BG/NBD by MAP under flat (HalfFlat) priors = maximum likelihood."""
    _quiet_libraries()
    from pymc_marketing.clv import BetaGeoModel

    data = summary[["customer_id", "frequency", "recency", "T"]]
    model = BetaGeoModel(model_config=_flat_priors(["r", "alpha", "a", "b"]))
    _quiet_fit(model, data)
    point = _map_point(model)
    params = BgNbdParams(r=point["r"], alpha=point["alpha"], a=point["a"], b=point["b"])
    if not all(math.isfinite(value) and value > 0 for value in vars(params).values()):
        raise ClvFitError(f"BG/NBD parameters out of range: {vars(params)}")
    return params


def fit_gamma_gamma(summary: pd.DataFrame) -> GammaGammaParams:
    """Gamma-Gamma on the repeat buyers (positive mean repeat order value), MAP, flat priors."""
    _quiet_libraries()
    from pymc_marketing.clv import GammaGammaModel

    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    data = repeat[["customer_id", "frequency", "monetary_value"]]
    model = GammaGammaModel(model_config=_flat_priors(["p", "q", "v"]))
    _quiet_fit(model, data)
    point = _map_point(model)
    params = GammaGammaParams(p=point["p"], q=point["q"], v=point["v"])
    if not all(math.isfinite(value) and value > 0 for value in vars(params).values()):
        raise ClvFitError(f"Gamma-Gamma parameters out of range: {vars(params)}")
    return params


@dataclass(frozen=True)
class FittedModels:
    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams
    population_order_value: float
    notes: tuple[str, ...] = ()


def fit_models(summary: pd.DataFrame, *, min_repeat_customers: int,
               what: str = "the model") -> FittedModels:
    """Both models on one summary; ClvFitError (a one-line reason) when they cannot be fitted."""
    n_repeat = int((summary["frequency"] > 0).sum())
    if n_repeat < min_repeat_customers:
        raise ClvFitError(f"{what}: {n_repeat} customer(s) with a repeat purchase day, fewer "
                          f"than clv.min_repeat_customers = {min_repeat_customers}")
    bgnbd = fit_bgnbd(summary)
    gamma_gamma = fit_gamma_gamma(summary)
    notes: list[str] = []
    population = gamma_gamma.population_mean
    if not math.isfinite(population):
        repeat_values = summary.loc[summary["frequency"] > 0, "monetary_value"]
        population = float(repeat_values.mean())
        notes.append(f"{what}: Gamma-Gamma q = {gamma_gamma.q:.3g} <= 1 has no finite population "
                     "mean; one-time buyers get the mean repeat order value instead")
    return FittedModels(bgnbd, gamma_gamma, population, tuple(notes))


# --- one run's CLV ------------------------------------------------------------------------------

def customer_value(lines: pd.DataFrame, *, as_of: date, settings: ClvSettings,
                   non_product_codes: Sequence[str] = (),
                   groups: pd.DataFrame | None = None,
                   coded: CustomerLines | None = None,
                   days: pd.DataFrame | None = None) -> ClvResult:
    """The run's CLV on its history lines (every line up to ``as_of``): both models, every
    customer's figures and the backtest. Never raises for data it cannot model: the reason is
    in ``notes`` and ``customers`` is None. ``days`` (optional) is the history's
    `purchase_days`, already made (the Spark backend makes it; ``lines`` is then not read)."""
    import time

    from engine.clv_backtest import backtest  # here: the backtest builds on this module

    result = ClvResult(time_unit=settings.time_unit, customers=None)
    if days is None:
        days = purchase_days(lines, non_product_codes=non_product_codes, coded=coded)
    summary = summarize_days(days, as_of=as_of, time_unit=settings.time_unit)
    start = time.perf_counter()
    try:
        fitted = fit_models(summary, min_repeat_customers=settings.min_repeat_customers,
                            what="CLV")
    except ClvFitError as exc:
        result.notes.append(f"{exc}: no CLV in this run")
        return result
    result.seconds["fit"] = round(time.perf_counter() - start, 3)
    result.bgnbd, result.gamma_gamma = fitted.bgnbd, fitted.gamma_gamma
    result.notes.extend(fitted.notes)
    start = time.perf_counter()
    result.customers = score_customers(summary, fitted.bgnbd, fitted.gamma_gamma,
                                       settings=settings,
                                       population_order_value=fitted.population_order_value)
    result.seconds["score"] = round(time.perf_counter() - start, 3)
    figures = result.customers.select_dtypes("number")
    if not np.isfinite(figures.to_numpy(dtype=float)).all():
        # A degenerate fit (e.g. a handful of customers) can give non-finite parameters or
        # figures: the run is published without CLV rather than failing on them.
        result.notes.append("the fitted models gave non-finite figures (too little data to "
                            "fit): no CLV in this run")
        result.customers = None
        return result
    short = int((result.customers["history"] == "short").sum())
    if short:
        result.notes.append(f"{short} customer(s) with little history (no repeat purchase day, "
                            f"or first seen under {settings.min_history_days} days before "
                            "as_of) have shrunk estimates, flagged history = short")
    start = time.perf_counter()
    result.backtest = backtest(days, as_of=as_of, settings=settings, groups=groups)
    result.seconds["backtest"] = round(time.perf_counter() - start, 3)
    if "note" in result.backtest:
        result.notes.append(result.backtest["note"])
    return result


def describe_fit(fit: dict[str, Any]) -> list[str]:
    """A stored fit (ClvResult.params()) as lines for a person: parameters, backtest, notes."""
    from engine.clv_backtest import describe_backtest

    unit = {"W": "weeks", "D": "days"}.get(fit.get("time_unit", ""), fit.get("time_unit"))
    lines = [f"time unit: {unit}"]
    bgnbd, gamma_gamma = fit.get("bgnbd"), fit.get("gamma_gamma")
    if bgnbd:
        lines.append("BG/NBD: " + ", ".join(f"{k} = {v:.4g}" for k, v in bgnbd.items()))
    if gamma_gamma:
        lines.append("Gamma-Gamma: " + ", ".join(f"{k} = {v:.4g}" for k, v in gamma_gamma.items()))
    lines.append(f"customers scored: {fit.get('n_customers', 0)}")
    lines.extend(describe_backtest(fit.get("backtest") or {}))
    lines.extend(f"note: {note}" for note in fit.get("notes", []))
    return lines
