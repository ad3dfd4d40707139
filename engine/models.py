"""The SQLModel schema. Alembic migrations in engine/migrations create exactly these tables.

Timestamps are timezone-aware UTC (sqlmodel stores datetimes as UTCDateTime).
Text keys (customer ids, stock codes) are kept as the source wrote them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, UniqueConstraint, false
from sqlmodel import Field, SQLModel


class SourceFile(SQLModel, table=True):
    """A file that was ingested; its sha256 makes loading the same file twice a no-op."""

    __tablename__ = "source_file"

    id: int | None = Field(default=None, primary_key=True)
    path: str
    sha256: str = Field(index=True, unique=True, max_length=64)
    kind: str = Field(max_length=16)  # transactions | customers
    loaded_at: datetime
    lines_read: int = 0
    lines_loaded: int = 0
    duplicates: int = 0
    rejected: int = 0


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    customer_id: str = Field(primary_key=True, max_length=64)
    first_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    phone_status: str = Field(default="unknown", max_length=16)  # unknown | valid | invalid
    signup_date: date | None = None
    country: str | None = Field(default=None, max_length=64)
    sms_consent: bool = False
    timezone: str | None = Field(default=None, max_length=64)


class Product(SQLModel, table=True):
    __tablename__ = "product"

    stock_code: str = Field(primary_key=True, max_length=64)
    description: str | None = None


class TransactionLine(SQLModel, table=True):
    """One invoice line. line_hash (a 64-bit hash of every field) makes exact duplicates and
    reloads no-ops: (ts, line_hash) is unique. The pair also serves as the ts index, and a file in
    time order appends to it instead of writing at random pages. Two different lines are taken
    for one only if they share the timestamp and the 64-bit hash (odds about n^2 / 2^65 for n
    lines of one timestamp: nil in practice, under 3e-6 even for 10 million lines all at once)."""

    __tablename__ = "transaction_line"
    __table_args__ = (
        UniqueConstraint("ts", "line_hash", name="uq_transaction_line_ts_hash"),
        Index("ix_transaction_line_customer", "customer_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    line_hash: int = Field(sa_column=Column(BigInteger(), nullable=False))
    source_file_id: int = Field(foreign_key="source_file.id")
    line_no: int
    invoice: str = Field(max_length=32)
    stock_code: str | None = Field(default=None, max_length=64)
    description: str | None = None
    quantity: float
    unit_price: float
    amount: float
    ts: datetime
    customer_id: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, max_length=64)
    is_return: bool = False


class InvoiceDay(SQLModel, table=True):
    """The lines of one invoice on one (UTC) day, summed per customer, return flag and product
    flag: what the dashboard's windows read instead of the lines (engine.store.invoice_days).
    Kept by ingest in the load's transaction; customer_id '' stands for "no customer" (a key
    column cannot be NULL). is_product: the stock code is not one of the non-product codes
    recorded in summary_setting (the ones in force when the rows were written); a line without
    a code counts, as it does for RFM."""

    __tablename__ = "invoice_day"
    # Clustered on the key on SQLite, so a window's rows are one range of the table.
    __table_args__ = (Index("ix_invoice_day_customer", "customer_id", "day"),
                      {"sqlite_with_rowid": False})

    day: date = Field(primary_key=True)
    invoice: str = Field(primary_key=True, max_length=32)
    customer_id: str = Field(primary_key=True, max_length=64)
    is_return: bool = Field(primary_key=True)
    is_product: bool = Field(primary_key=True)
    lines: int
    amount: float  # the lines' amounts as stored
    net: float  # the same with every return counted as -|amount| (the RFM's net value)
    quantity: float


class SummarySetting(SQLModel, table=True):
    """A setting the stored summaries were built with (name 'non_product_codes': the sorted
    codes invoice_day's is_product leaves out), so a reader with other settings knows not to
    use them."""

    __tablename__ = "summary_setting"

    name: str = Field(primary_key=True, max_length=64)
    value: list[str] = Field(sa_column=Column(JSON, nullable=False))


class SegmentationRun(SQLModel, table=True):
    """One engine run. The published run is the latest with status 'succeeded'."""

    __tablename__ = "segmentation_run"

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="running", max_length=16, index=True)  # running|succeeded|failed
    started_at: datetime
    finished_at: datetime | None = None
    as_of: date | None = None
    since: date | None = None
    until: date | None = None
    k: int | None = None
    k_mode: str = Field(default="auto", max_length=16)
    seed: int = 42
    n_customers: int | None = None
    n_lines: int | None = None
    params: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    diagnostics: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None


class CustomerResult(SQLModel, table=True):
    __tablename__ = "customer_result"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    customer_id: str = Field(primary_key=True, max_length=64)
    recency_days: int
    frequency: int
    monetary: float
    r_score: int
    f_score: int
    m_score: int
    rfm_code: str = Field(max_length=8)
    rfm_score: int
    rfm_segment: str = Field(max_length=64)
    rfm_grid_segment: str = Field(max_length=64)
    cluster: int
    value_tier: str = Field(max_length=32)
    customer_class: str = Field(max_length=32)


class ClusterProfile(SQLModel, table=True):
    __tablename__ = "cluster_profile"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    cluster: int = Field(primary_key=True)
    size: int
    recency_days: float
    frequency: float
    monetary: float
    revenue: float
    revenue_share: float
    value_tier: str = Field(max_length=32)
    strategy: str
    # From the centroid's R/F/M levels (engine.profiles); '' on runs stored before personas.
    persona: str = Field(default="", max_length=48, sa_column_kwargs={"server_default": ""})
    r_level: str = Field(default="", max_length=8, sa_column_kwargs={"server_default": ""})
    f_level: str = Field(default="", max_length=8, sa_column_kwargs={"server_default": ""})
    m_level: str = Field(default="", max_length=8, sa_column_kwargs={"server_default": ""})


class RunMonth(SQLModel, table=True):
    """A run's figures of one month of its window (engine.sales_figures; month YYYY-MM)."""

    __tablename__ = "run_month"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    month: str = Field(primary_key=True, max_length=7)
    revenue: float
    orders: int
    active_customers: int
    new_customers: int


class RunProduct(SQLModel, table=True):
    """A run's figures of one product over its window (engine.sales_figures); quantity is NULL
    when the lines carried none."""

    __tablename__ = "run_product"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    stock_code: str = Field(primary_key=True, max_length=64)
    revenue: float
    quantity: float | None = None
    customers: int


class RunGroupProduct(SQLModel, table=True):
    """A run's figures of one product within one customer class or one cluster (grouping
    'customer_class' or 'cluster'; group: the class name or the cluster number as text)."""

    __tablename__ = "run_group_product"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    grouping: str = Field(primary_key=True, max_length=16)
    group: str = Field(primary_key=True, max_length=64)
    stock_code: str = Field(primary_key=True, max_length=64)
    revenue: float
    customers: int


class AssociationRule(SQLModel, table=True):
    """cluster is NULL for the rules mined over all customers."""

    __tablename__ = "association_rule"
    __table_args__ = (Index("ix_association_rule_run_cluster", "run_id", "cluster"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="segmentation_run.id")
    cluster: int | None = None
    antecedents: str
    consequents: str
    support: float
    confidence: float
    lift: float
    leverage: float
    conviction: float | None = None  # infinite when confidence is 1
    zhangs_metric: float | None = None


class Recommendation(SQLModel, table=True):
    __tablename__ = "recommendation"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    customer_id: str = Field(primary_key=True, max_length=64)
    rank: int = Field(primary_key=True)
    stock_code: str = Field(max_length=64)
    description: str | None = None
    score: float
    reason: str


class OfferMessage(SQLModel, table=True):
    """One offer SMS. offer_key (offer id + customer) is written before the provider is called."""

    __tablename__ = "offer_message"

    id: int | None = Field(default=None, primary_key=True)
    offer_key: str = Field(unique=True, max_length=160)
    offer_id: str = Field(max_length=64, index=True)
    customer_id: str = Field(max_length=64, index=True)
    run_id: int | None = Field(default=None, foreign_key="segmentation_run.id")
    phone: str = Field(max_length=32)
    body: str
    segments: int = 1
    # pending | sending | dry_run | queued | sent | delivered | undelivered | failed | unknown
    # | retry | holdout (kept out of the offer to measure it; never messaged)
    status: str = Field(default="pending", max_length=16, index=True)
    pass_id: str | None = Field(default=None, max_length=64, index=True)
    # treatment | holdout (engine.outcomes): the group the customer drew for this offer
    assigned_group: str = Field(default="treatment", max_length=16,
                                sa_column_kwargs={"server_default": "treatment"})
    provider_sid: str | None = Field(default=None, unique=True, max_length=64)
    error_code: str | None = Field(default=None, max_length=16)
    error_text: str | None = None
    attempts: int = 0
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None


class OfferEarlyStatus(SQLModel, table=True):
    """A delivery status callback for a sid no offer_message carries yet: Twilio can call back
    before the sending process has written the sid. Applied (and deleted) when it is written."""

    __tablename__ = "offer_early_status"

    provider_sid: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)  # the highest-ranked status received so far
    error_code: str | None = Field(default=None, max_length=16)
    received_at: datetime = Field(index=True)


class OfferSkip(SQLModel, table=True):
    """Why a customer did not get an offer in a pass (no consent, opted out, quiet hours, ...)."""

    __tablename__ = "offer_skip"

    id: int | None = Field(default=None, primary_key=True)
    pass_id: str = Field(max_length=64, index=True)
    offer_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    reason: str = Field(max_length=64)
    created_at: datetime


class OptOut(SQLModel, table=True):
    __tablename__ = "opt_out"

    phone: str = Field(primary_key=True, max_length=32)
    opted_out: bool = True
    source: str = Field(max_length=32)  # STOP keyword, error 21610, ...
    updated_at: datetime


class InboundMessage(SQLModel, table=True):
    """An inbound SMS already handled, by Twilio's MessageSid: a replayed webhook (its signature
    carries no timestamp) is never applied twice."""

    __tablename__ = "inbound_message"

    message_sid: str = Field(primary_key=True, max_length=64)
    phone: str = Field(max_length=32)
    keyword: str = Field(max_length=32)
    received_at: datetime = Field(index=True)


class JobHistory(SQLModel, table=True):
    __tablename__ = "job_history"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=64, index=True)
    trigger: str = Field(max_length=128)
    started_at: datetime
    finished_at: datetime | None = None
    status: str = Field(default="running", max_length=16)  # running|succeeded|failed|skipped
    error: str | None = None
    run_id: int | None = None
    details: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class JobLock(SQLModel, table=True):
    """Cross-process lock row (SQLite); PostgreSQL uses advisory locks instead."""

    __tablename__ = "job_lock"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    acquired_at: datetime
    expires_at: datetime


class DashboardUser(SQLModel, table=True):
    __tablename__ = "dashboard_user"
    __table_args__ = (UniqueConstraint("username"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)  # manager | analyst
    created_at: datetime
    # Stamped into the session cookie at login; raised on logout, role or password change and
    # revocation, so every cookie issued before no longer works.
    session_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    revoked: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class CustomerClv(SQLModel, table=True):
    """A run's predicted value per customer (engine/clv.py); recency and T in the run's
    clv time unit (clv_fit.time_unit)."""

    __tablename__ = "customer_clv"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    customer_id: str = Field(primary_key=True, max_length=64)
    frequency: int
    recency: float
    T: float
    p_alive: float
    expected_purchases_90d: float
    expected_purchases_365d: float
    expected_order_value: float
    clv_365d: float
    churn_risk: str = Field(max_length=8)  # high | medium | low
    history: str = Field(max_length=8)  # full | short (shrunk estimate)
    order_value_source: str = Field(max_length=16)  # gamma_gamma | population


class ClvFit(SQLModel, table=True):
    """A run's fitted BG/NBD and Gamma-Gamma parameters, backtest and notes (the JSON of
    `segmint clv --json`); one row per run, also when no fit was possible (its notes say why)."""

    __tablename__ = "clv_fit"

    run_id: int = Field(foreign_key="segmentation_run.id", primary_key=True)
    time_unit: str = Field(max_length=2)
    params: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
