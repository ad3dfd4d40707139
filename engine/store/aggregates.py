"""Read-only SQL aggregates for the dashboard: sales, products, runs, offers and jobs.

Every function is keyword-only, takes the engine explicitly and returns a small DataFrame or dict;
the heavy lifting (grouping 500k transaction lines) happens in the database, never in Python.
Windows are inclusive calendar dates: [since, until] means since 00:00 <= ts < until+1 day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    case,
    desc,
    distinct,
    func,
    literal,
    not_,
    select,
)
from sqlalchemy.sql.expression import ColumnElement as _Column

from engine.models import (
    AssociationRule,
    ClusterProfile,
    Customer,
    CustomerResult,
    JobHistory,
    OfferMessage,
    OfferSkip,
    OptOut,
    Product,
    Recommendation,
    SegmentationRun,
    TransactionLine,
)
from engine.phones import mask_phone

LINES = TransactionLine.__table__  # type: ignore[attr-defined]
RUNS = SegmentationRun.__table__  # type: ignore[attr-defined]
RESULTS = CustomerResult.__table__  # type: ignore[attr-defined]
PROFILES = ClusterProfile.__table__  # type: ignore[attr-defined]
RULES = AssociationRule.__table__  # type: ignore[attr-defined]
RECOMMENDATIONS = Recommendation.__table__  # type: ignore[attr-defined]
CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
PRODUCTS = Product.__table__  # type: ignore[attr-defined]
MESSAGES = OfferMessage.__table__  # type: ignore[attr-defined]
SKIPS = OfferSkip.__table__  # type: ignore[attr-defined]
OPT_OUTS = OptOut.__table__  # type: ignore[attr-defined]
JOBS = JobHistory.__table__  # type: ignore[attr-defined]

SEGMENT_COLUMNS = [
    "customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
    "rfm_code", "rfm_score", "rfm_segment", "cluster", "value_tier", "customer_class",
]
DELIVERED = ("delivered",)
ATTEMPTED = ("sent", "queued", "delivered", "undelivered", "failed", "unknown")


def _frame(engine: Engine, statement: Select[Any],
           columns: Sequence[str] | None = None) -> pd.DataFrame:
    with engine.connect() as connection:
        result = connection.execute(statement)
        rows = result.fetchall()
        names = list(columns) if columns is not None else list(result.keys())
    return pd.DataFrame([tuple(row) for row in rows], columns=names)


def _month(engine: Engine, column: _Column[Any]) -> ColumnElement[str]:
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _utc_bound(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _window(since: date | None, until: date | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(LINES.c.ts >= _utc_bound(since))
    if until is not None:
        conditions.append(LINES.c.ts < _utc_bound(until + timedelta(days=1)))
    return conditions


def _products_only(non_product_codes: Sequence[str]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [LINES.c.stock_code.is_not(None)]
    if non_product_codes:
        conditions.append(LINES.c.stock_code.not_in(list(non_product_codes)))
    return conditions


def _orders() -> ColumnElement[int]:
    """Distinct purchase invoices (returns are not orders)."""
    return func.count(distinct(case((not_(LINES.c.is_return), LINES.c.invoice))))


# --- data state -------------------------------------------------------------------------------

def data_version(*, engine: Engine) -> str:
    """Changes whenever lines are loaded or a run finishes: part of every dashboard cache key."""
    # Lines are only ever appended (ingest never deletes), so the largest id tells them apart;
    # both maxima come from an index, never a table scan.
    statement = select(
        select(func.max(LINES.c.id)).scalar_subquery(),
        select(func.max(RUNS.c.id)).where(RUNS.c.status == "succeeded").scalar_subquery(),
    )
    with engine.connect() as connection:
        row = connection.execute(statement).one()
    return "-".join(str(value) for value in row)


def data_span(*, engine: Engine) -> tuple[date, date] | None:
    """First and last transaction dates, or None when nothing is loaded."""
    with engine.connect() as connection:
        first, last = connection.execute(select(func.min(LINES.c.ts), func.max(LINES.c.ts))).one()
    if first is None:
        return None
    return pd.Timestamp(first).date(), pd.Timestamp(last).date()


def published_run(*, engine: Engine) -> dict[str, Any] | None:
    """The latest succeeded run (the one the dashboard shows), or None."""
    statement = (select(RUNS).where(RUNS.c.status == "succeeded")
                 .order_by(desc(RUNS.c.finished_at), desc(RUNS.c.id)).limit(1))
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().first()
    return dict(row) if row else None


def list_runs(*, engine: Engine, status: str | None = "succeeded",
              limit: int = 100) -> pd.DataFrame:
    columns = [RUNS.c.id, RUNS.c.status, RUNS.c.started_at, RUNS.c.finished_at, RUNS.c.as_of,
               RUNS.c.since, RUNS.c.until, RUNS.c.k, RUNS.c.n_customers, RUNS.c.error]
    statement = select(*columns).order_by(desc(RUNS.c.id)).limit(limit)
    if status is not None:
        statement = statement.where(RUNS.c.status == status)
    return _frame(engine, statement)


# --- sales ------------------------------------------------------------------------------------

def kpis(*, engine: Engine, since: date | None = None,
         until: date | None = None) -> dict[str, float]:
    """Net revenue, orders, customers with a purchase, average order value, lines."""
    statement = select(
        func.coalesce(func.sum(LINES.c.amount), 0.0),
        _orders(),
        func.count(distinct(case((not_(LINES.c.is_return), LINES.c.customer_id)))),
        func.count(LINES.c.id),
    ).where(*_window(since, until))
    with engine.connect() as connection:
        revenue, orders, customers, lines = connection.execute(statement).one()
    revenue = float(revenue or 0.0)
    return {
        "revenue": revenue,
        "orders": int(orders or 0),
        "customers": int(customers or 0),
        "aov": revenue / orders if orders else 0.0,
        "lines": int(lines or 0),
    }


def new_customers_by_month(*, engine: Engine) -> pd.DataFrame:
    """Per month (YYYY-MM): new_customers, the customers whose first purchase ever it holds.

    It reads every line whatever the window, so callers showing several windows compute it once
    and pass it to monthly_trends."""
    firsts = (
        select(LINES.c.customer_id, func.min(LINES.c.ts).label("first_ts"))
        .where(LINES.c.customer_id.is_not(None), not_(LINES.c.is_return))
        .group_by(LINES.c.customer_id)
        .subquery()
    )
    first_month = _month(engine, firsts.c.first_ts).label("month")
    new = select(first_month, func.count().label("new_customers")).group_by(first_month)
    return _frame(engine, new)


def monthly_trends(*, engine: Engine, since: date | None = None, until: date | None = None,
                   new_customers: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per month: revenue, orders, active_customers, new_customers (first purchase ever).

    new_customers: new_customers_by_month's frame when the caller has it already."""
    month = _month(engine, LINES.c.ts).label("month")
    sales = (
        select(
            month,
            func.sum(LINES.c.amount).label("revenue"),
            _orders().label("orders"),
            func.count(distinct(case((not_(LINES.c.is_return), LINES.c.customer_id))))
            .label("active_customers"),
        )
        .where(*_window(since, until))
        .group_by(month)
        .order_by(month)
    )
    frame = _frame(engine, sales)
    new_frame = (new_customers if new_customers is not None
                 else new_customers_by_month(engine=engine))
    if frame.empty:
        return pd.DataFrame(columns=["month", "revenue", "orders", "active_customers",
                                     "new_customers"])
    frame = frame.merge(new_frame, on="month", how="left")
    frame["new_customers"] = frame["new_customers"].fillna(0).astype(int)
    frame["revenue"] = frame["revenue"].astype(float)
    frame["orders"] = frame["orders"].astype(int)
    frame["active_customers"] = frame["active_customers"].astype(int)
    return frame.reset_index(drop=True)


# --- products ---------------------------------------------------------------------------------

def product_summary(*, engine: Engine, non_product_codes: Sequence[str], since: date | None = None,
                    until: date | None = None) -> pd.DataFrame:
    """Per product: description, net revenue, net quantity, distinct buying customers, orders."""
    statement = (
        select(
            LINES.c.stock_code,
            func.sum(LINES.c.amount).label("revenue"),
            func.sum(LINES.c.quantity).label("quantity"),
            func.count(distinct(case((not_(LINES.c.is_return), LINES.c.customer_id))))
            .label("customers"),
            _orders().label("orders"),
        )
        .where(*_products_only(non_product_codes), *_window(since, until))
        .group_by(LINES.c.stock_code)
    )
    frame = _with_descriptions(engine, _frame(engine, statement))
    for column in ("revenue", "quantity"):
        frame[column] = frame[column].astype(float)
    for column in ("customers", "orders"):
        frame[column] = frame[column].astype(int)
    return frame


def customer_products(*, engine: Engine, non_product_codes: Sequence[str],
                      since: date | None = None, until: date | None = None) -> pd.DataFrame:
    """Per customer and product of the window: net revenue, net quantity and purchase lines
    (returns left out), so the dashboard can group products by any per-customer rows (a window's
    recomputed classes, a selection of classes or segments)."""
    statement = (
        select(
            LINES.c.customer_id,
            LINES.c.stock_code,
            func.sum(LINES.c.amount).label("revenue"),
            func.sum(LINES.c.quantity).label("quantity"),
            func.count(case((not_(LINES.c.is_return), 1))).label("purchases"),
        )
        .where(LINES.c.customer_id.is_not(None), *_products_only(non_product_codes),
               *_window(since, until))
        .group_by(LINES.c.customer_id, LINES.c.stock_code)
    )
    frame = _frame(engine, statement)
    for column in ("revenue", "quantity"):
        frame[column] = frame[column].astype(float)
    frame["purchases"] = frame["purchases"].astype(int)
    return frame


GROUPINGS = ("customer_class", "cluster", "value_tier")


def top_products_by_groups(*, engine: Engine, run_id: int, by: Sequence[str],
                           non_product_codes: Sequence[str], since: date | None = None,
                           until: date | None = None, limit: int = 5) -> dict[str, pd.DataFrame]:
    """top_products_by_group for several groupings from one pass over the lines.

    The SQL groups by every grouping at once; a run gives each customer one class, one cluster and
    one tier, so customers of different groups never overlap and the distinct-customer counts
    add up over the finer groups."""
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown or not by:
        raise ValueError(f"cannot group products by {unknown or by!r}")
    names = list(dict.fromkeys(by))
    statement = (
        select(
            *(RESULTS.c[name] for name in names),
            LINES.c.stock_code,
            func.sum(LINES.c.amount).label("revenue"),
            func.count(distinct(LINES.c.customer_id)).label("customers"),
        )
        .select_from(LINES.join(RESULTS, and_(RESULTS.c.customer_id == LINES.c.customer_id,
                                              RESULTS.c.run_id == run_id)))
        .where(*_products_only(non_product_codes), *_window(since, until))
        .group_by(*(RESULTS.c[name] for name in names), LINES.c.stock_code)
    )
    fine = _frame(engine, statement)
    found: dict[str, pd.DataFrame] = {}
    for name in names:
        if fine.empty:
            found[name] = pd.DataFrame(columns=["group", "stock_code", "revenue", "customers"]
                                       ).assign(description=pd.Series(dtype=object))
            continue
        frame = (fine.groupby([name, "stock_code"], sort=False)[["revenue", "customers"]].sum()
                 .reset_index().rename(columns={name: "group"}))
        frame["revenue"] = frame["revenue"].astype(float)
        frame["customers"] = frame["customers"].astype(int)
        frame = frame.sort_values(["group", "revenue", "stock_code"],
                                  ascending=[True, False, True])
        top = frame.groupby("group", sort=True).head(limit).reset_index(drop=True)
        found[name] = _with_descriptions(engine, top)
    return found


def top_products_by_group(*, engine: Engine, run_id: int, by: str, non_product_codes: Sequence[str],
                          since: date | None = None, until: date | None = None,
                          limit: int = 5) -> pd.DataFrame:
    """Top products by net revenue within each customer_class or cluster of a run."""
    return top_products_by_groups(engine=engine, run_id=run_id, by=(by,),
                                  non_product_codes=non_product_codes, since=since, until=until,
                                  limit=limit)[by]


def product_names(*, engine: Engine, stock_codes: Sequence[str]) -> dict[str, str]:
    """Description per stock code (the product table's, kept current by ingest)."""
    codes = sorted({code for code in stock_codes if code})
    names: dict[str, str] = {}
    with engine.connect() as connection:
        for start in range(0, len(codes), 500):
            chunk = codes[start:start + 500]
            statement = select(PRODUCTS.c.stock_code, PRODUCTS.c.description).where(
                PRODUCTS.c.stock_code.in_(chunk))
            names.update({code: text for code, text in connection.execute(statement) if text})
    return names


def _with_descriptions(engine: Engine, frame: pd.DataFrame) -> pd.DataFrame:
    names = product_names(engine=engine, stock_codes=frame["stock_code"].tolist())
    described = frame.copy()
    position = list(described.columns).index("stock_code") + 1
    described.insert(position, "description", described["stock_code"].map(names))
    return described


# --- segmentation results ---------------------------------------------------------------------

def segment_summary(*, engine: Engine, run_id: int, by: str) -> pd.DataFrame:
    """Customers, total and mean monetary value per customer_class, rfm_segment, ... of a run."""
    if by not in ("customer_class", "rfm_segment", "rfm_grid_segment", "value_tier", "cluster"):
        raise ValueError(f"cannot summarise a run by {by!r}")
    group = RESULTS.c[by]
    statement = (
        select(group.label(by), func.count().label("customers"),
               func.sum(RESULTS.c.monetary).label("monetary"),
               func.avg(RESULTS.c.monetary).label("mean_monetary"))
        .where(RESULTS.c.run_id == run_id)
        .group_by(group)
        .order_by(desc("customers"))
    )
    frame = _frame(engine, statement)
    if not frame.empty:
        frame["monetary"] = frame["monetary"].astype(float)
        frame["mean_monetary"] = frame["mean_monetary"].astype(float)
        total = frame["monetary"].clip(lower=0).sum()
        frame["value_share"] = frame["monetary"].clip(lower=0) / total if total else 0.0
    return frame


def customer_results(*, engine: Engine, run_id: int, classes: Sequence[str] | None = None,
                     segments: Sequence[str] | None = None) -> pd.DataFrame:
    """A run's per-customer rows in `export segments` column order, optionally filtered."""
    statement = select(*(RESULTS.c[name] for name in SEGMENT_COLUMNS)).where(
        RESULTS.c.run_id == run_id)
    if classes:
        statement = statement.where(RESULTS.c.customer_class.in_(list(classes)))
    if segments:
        statement = statement.where(RESULTS.c.rfm_segment.in_(list(segments)))
    return _frame(engine, statement.order_by(RESULTS.c.customer_id), SEGMENT_COLUMNS)


def cluster_profiles(*, engine: Engine, run_id: int) -> pd.DataFrame:
    statement = select(PROFILES).where(PROFILES.c.run_id == run_id).order_by(
        desc(PROFILES.c.revenue_share), PROFILES.c.cluster)
    return _frame(engine, statement)


def transitions(*, engine: Engine, from_run: int, to_run: int,
                by: str = "customer_class") -> pd.DataFrame:
    """Customers moving between groups of two runs; 'Not in run' for customers in only one."""
    if by not in ("customer_class", "value_tier", "rfm_segment"):
        raise ValueError(f"cannot show transitions by {by!r}")
    before = RESULTS.alias("before")
    after = RESULTS.alias("after")
    missing = literal("Not in run")
    stayed = (
        select(before.c[by].label("source"),
               func.coalesce(after.c[by], missing).label("target"),
               func.count().label("customers"))
        .select_from(before.outerjoin(after, and_(before.c.customer_id == after.c.customer_id,
                                                  after.c.run_id == to_run)))
        .where(before.c.run_id == from_run)
        .group_by(before.c[by], after.c[by])
    )
    earlier = select(RESULTS.c.customer_id).where(RESULTS.c.run_id == from_run)
    arrived = (
        select(missing.label("source"), after.c[by].label("target"),
               func.count().label("customers"))
        .where(after.c.run_id == to_run, after.c.customer_id.not_in(earlier))
        .group_by(after.c[by])
    )
    frame = pd.concat([_frame(engine, stayed), _frame(engine, arrived)], ignore_index=True)
    frame["customers"] = frame["customers"].astype(int)
    return frame.sort_values(["source", "target"]).reset_index(drop=True)


def rules(*, engine: Engine, run_id: int, cluster: int | None = None,
          all_clusters: bool = True) -> pd.DataFrame:
    """A run's association rules (cluster None = mined over all customers), best lift first."""
    statement = select(RULES.c.cluster, RULES.c.antecedents, RULES.c.consequents, RULES.c.support,
                       RULES.c.confidence, RULES.c.lift, RULES.c.leverage, RULES.c.conviction,
                       RULES.c.zhangs_metric).where(RULES.c.run_id == run_id)
    if not all_clusters:
        statement = statement.where(RULES.c.cluster.is_(None) if cluster is None
                                    else RULES.c.cluster == cluster)
    return _frame(engine, statement.order_by(desc(RULES.c.lift), RULES.c.id))


# --- one customer -----------------------------------------------------------------------------

def customer_profile(*, engine: Engine, customer_id: str,
                     run_id: int | None) -> dict[str, Any] | None:
    """Customer master data (phone masked) with the run's RFM row; None when unknown."""
    with engine.connect() as connection:
        customer = connection.execute(
            select(CUSTOMERS).where(CUSTOMERS.c.customer_id == customer_id)).mappings().first()
        result = None
        if run_id is not None:
            result = connection.execute(
                select(RESULTS).where(RESULTS.c.run_id == run_id,
                                      RESULTS.c.customer_id == customer_id)).mappings().first()
        has_lines = connection.execute(
            select(func.count()).select_from(LINES).where(LINES.c.customer_id == customer_id)
        ).scalar_one()
        contact = connection.execute(_contact(customer_id)).first()
    if customer is None and result is None and not has_lines:
        return None
    profile: dict[str, Any] = {"customer_id": customer_id}
    if customer is not None:
        profile.update({key: customer[key] for key in ("first_name", "country", "signup_date",
                                                      "sms_consent", "phone_status")})
        profile["phone"] = mask_phone(customer["phone"])
        profile["opt_out"] = contact[2] if contact is not None else None
    if result is not None:
        profile.update({key: result[key] for key in SEGMENT_COLUMNS + ["rfm_grid_segment"]})
    return profile


def customer_contact(*, engine: Engine, customer_id: str) -> tuple[bool, str, str | None]:
    """(SMS consent, phone status, how the number opted out or None): what decides whether an
    offer may go to the customer, read fresh (webhooks and the sender change it between runs).
    """
    with engine.connect() as connection:
        row = connection.execute(_contact(customer_id)).first()
    if row is None:
        return False, "unknown", None
    return bool(row[0]), str(row[1] or "unknown"), row[2]


def _contact(customer_id: str) -> Select[Any]:
    """The customer's SMS consent, phone status and opt-out source (None if not opted out)."""
    return (select(CUSTOMERS.c.sms_consent, CUSTOMERS.c.phone_status, OPT_OUTS.c.source)
            .select_from(CUSTOMERS.outerjoin(OPT_OUTS, (OPT_OUTS.c.phone == CUSTOMERS.c.phone)
                                             & OPT_OUTS.c.opted_out.is_(True)))
            .where(CUSTOMERS.c.customer_id == customer_id))


def customer_purchases(*, engine: Engine, customer_id: str, limit: int = 50) -> pd.DataFrame:
    statement = (
        select(LINES.c.ts, LINES.c.invoice, LINES.c.stock_code, LINES.c.description,
               LINES.c.quantity, LINES.c.unit_price, LINES.c.amount)
        .where(LINES.c.customer_id == customer_id)
        .order_by(desc(LINES.c.ts), LINES.c.id)
        .limit(limit)
    )
    return _frame(engine, statement)


def customer_recommendations(*, engine: Engine, run_id: int, customer_id: str) -> pd.DataFrame:
    statement = (
        select(RECOMMENDATIONS.c.rank, RECOMMENDATIONS.c.stock_code,
               RECOMMENDATIONS.c.description, RECOMMENDATIONS.c.score, RECOMMENDATIONS.c.reason)
        .where(RECOMMENDATIONS.c.run_id == run_id, RECOMMENDATIONS.c.customer_id == customer_id)
        .order_by(RECOMMENDATIONS.c.rank)
    )
    return _frame(engine, statement)


def sample_customers(*, engine: Engine, run_id: int, limit: int = 20) -> list[str]:
    """Customers of a run with the highest monetary value (suggestions for the look-up)."""
    statement = (select(RESULTS.c.customer_id).where(RESULTS.c.run_id == run_id)
                 .order_by(desc(RESULTS.c.monetary), RESULTS.c.customer_id).limit(limit))
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(statement)]


# --- offers and jobs --------------------------------------------------------------------------

def offer_summary(*, engine: Engine) -> dict[str, Any]:
    """Message counts by status and by offer, delivery rate, opt-outs and skip reasons."""
    by_status = _frame(engine, select(MESSAGES.c.status, func.count().label("messages"))
                       .group_by(MESSAGES.c.status).order_by(desc("messages")))
    by_offer = _frame(engine, select(MESSAGES.c.offer_id, MESSAGES.c.status,
                                     func.count().label("messages"))
                      .group_by(MESSAGES.c.offer_id, MESSAGES.c.status))
    skips = _frame(engine, select(SKIPS.c.reason, func.count().label("customers"))
                   .group_by(SKIPS.c.reason).order_by(desc("customers")))
    with engine.connect() as connection:
        opted_out = connection.execute(
            select(func.count()).select_from(OPT_OUTS).where(OPT_OUTS.c.opted_out.is_(True))
        ).scalar_one()
    counts = dict(zip(by_status["status"], by_status["messages"].astype(int), strict=True))
    attempted = sum(counts.get(status, 0) for status in ATTEMPTED)
    delivered = sum(counts.get(status, 0) for status in DELIVERED)
    return {
        "by_status": by_status,
        "by_offer": by_offer,
        "skips": skips,
        "total": int(sum(counts.values())),
        "attempted": attempted,
        "delivered": delivered,
        "failed": counts.get("failed", 0) + counts.get("undelivered", 0),
        "dry_run": counts.get("dry_run", 0),
        "retry": counts.get("retry", 0),
        "delivery_rate": delivered / attempted if attempted else None,
        "opted_out": int(opted_out),
    }


def job_history(*, engine: Engine, limit: int = 200) -> pd.DataFrame:
    statement = (select(JOBS.c.id, JOBS.c.job_id, JOBS.c.trigger, JOBS.c.started_at,
                        JOBS.c.finished_at, JOBS.c.status, JOBS.c.run_id, JOBS.c.error)
                 .order_by(desc(JOBS.c.started_at), desc(JOBS.c.id)).limit(limit))
    return _frame(engine, statement)
