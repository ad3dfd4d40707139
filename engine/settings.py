"""Typed settings: config.toml loaded once at the entry point, environment overrides on top.

Every section is a pydantic model that forbids unknown keys, so a typo in config.toml stops the
program with one line naming the key instead of being silently ignored. Secrets (Twilio
credentials, the dashboard's cookie key) come only from the environment.

Why one module over 450 lines: it is the schema of config.toml, one small class per section in
the file's order, so a reader checks a key against one place; splitting it by section would
scatter the one definition of the settings that STYLE.md asks for.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.errors import SegmintError

DEFAULT_CONFIG = Path("config.toml")
TWILIO_API_URL = "https://api.twilio.com"
# Offer outcomes (engine/outcomes.py): the largest holdout share, the attribution window's range.
MAX_HOLDOUT_SHARE = 0.5
ATTRIBUTION_DAYS_RANGE = (1, 365)


class SettingsError(SegmintError):
    """A setting is missing, unknown, of the wrong type or impossible; the message is one line."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(Section):
    url: str = "sqlite:///var/segmint.db"
    echo: bool = False


class IngestMapping(Section):
    """Source column names for the generic preset; empty string means 'not in the file'."""

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    invoice: str = "invoice"
    stock_code: str = "stock_code"
    description: str = "description"
    quantity: str = "quantity"
    unit_price: str = "unit_price"
    amount: str = ""
    country: str = "country"
    timestamp_format: str = "%Y-%m-%d %H:%M:%S"


class IngestSettings(Section):
    default_preset: Literal["online-retail", "online-retail-ii", "generic"] = "generic"
    non_product_codes: list[str] = Field(
        default_factory=lambda: [
            "POST", "DOT", "M", "D", "C2", "BANK CHARGES", "AMAZONFEE", "B", "CRUK", "S", "PADS",
        ]
    )
    rejects_dir: str = "var/rejects"
    batch_size: Annotated[int, Field(gt=0)] = 50_000
    # A line whose quantity, unit price or amount is beyond +-max_abs_amount (or not finite),
    # or dated before earliest_date or more than a day after the load, is a rejected line.
    max_abs_amount: Annotated[float, Field(gt=0)] = 1e9
    earliest_date: date = date(1990, 1, 1)  # the CDNOW sample starts in 1997
    mapping: IngestMapping = IngestMapping()


class ScoreSegment(Section):
    name: str
    min_score: Annotated[int, Field(ge=0)]


class GridSegment(Section):
    name: str
    r: tuple[int, int]
    f: tuple[int, int]

    @model_validator(mode="after")
    def _ranges_ordered(self) -> GridSegment:
        for label, (low, high) in (("r", self.r), ("f", self.f)):
            if low > high:
                raise ValueError(f"{label} range {low}..{high} is empty")
        return self


def _korean_bands() -> list[ScoreSegment]:
    bands = [
        ("VIP", 545), ("Loyal", 511), ("Potential Loyalists", 443), ("New", 411),
        ("Promising", 333), ("Need Attention", 311), ("About To Sleep", 231),
        ("Cannot Lose Them", 188), ("At-Risk", 121), ("Hibernating", 0),
    ]
    return [ScoreSegment(name=name, min_score=score) for name, score in bands]


def _rf_grid() -> list[GridSegment]:
    grid = [
        ("Champions", (5, 5), (4, 5)),
        ("Loyal Customers", (3, 4), (4, 5)),
        ("Potential Loyalists", (4, 5), (2, 3)),
        ("Recent Customers", (5, 5), (1, 1)),
        ("Promising", (4, 4), (1, 1)),
        ("Need Attention", (3, 3), (3, 3)),
        ("About To Sleep", (3, 3), (1, 2)),
        ("Cannot Lose Them", (1, 2), (5, 5)),
        ("At Risk", (1, 2), (3, 4)),
        ("Hibernating", (1, 2), (1, 2)),
    ]
    return [GridSegment(name=n, r=r, f=f) for n, r, f in grid]


class RfmSettings(Section):
    score_levels: Literal[4, 5] = 5
    segments: list[ScoreSegment] = Field(default_factory=_korean_bands)
    grid_segments: list[GridSegment] = Field(default_factory=_rf_grid)

    @model_validator(mode="after")
    def _schemes_total(self) -> RfmSettings:
        if not self.segments or self.segments[-1].min_score != 0:
            raise ValueError(
                "the last entry of segments must have min_score = 0 so every customer gets one"
            )
        if not self.grid_segments:
            raise ValueError("grid_segments is empty")
        return self


Feature = Literal["recency", "frequency", "monetary", "tenure", "avg_order_value"]


def _rfm_features() -> list[Feature]:
    return ["recency", "frequency", "monetary"]


class ClusteringSettings(Section):
    features: list[Feature] = Field(default_factory=_rfm_features)
    k: Literal["auto"] | Annotated[int, Field(ge=2, le=30)] = "auto"
    # 3: three value tiers need three clusters (k = 2 is allowed: high and low tiers only).
    k_min: Annotated[int, Field(ge=2)] = 3
    k_max: Annotated[int, Field(ge=2, le=30)] = 10
    seed: int = 42
    n_init: Annotated[int, Field(ge=1)] = 10
    silhouette_sample: Annotated[int, Field(ge=100)] = 5_000
    gap_references: Annotated[int, Field(ge=1)] = 5
    tiers: list[str] = Field(default_factory=lambda: ["High value", "Mid value", "Low value"])

    @model_validator(mode="after")
    def _k_range(self) -> ClusteringSettings:
        if self.k_min > self.k_max:
            raise ValueError(f"k range {self.k_min}..{self.k_max} is empty (k_min > k_max)")
        if len(self.tiers) != 3:
            raise ValueError("tiers must name exactly three tiers, best first")
        return self


class ClassSettings(Section):
    new_days: Annotated[int, Field(gt=0)] = 90
    growth_days: Annotated[int, Field(gt=0)] = 90
    growth_factor: Annotated[float, Field(gt=0)] = 2.0


Level = Literal["high", "mid", "low"]
LEVELS: tuple[Level, ...] = ("high", "mid", "low")
# How far a persona's customers have drifted away; a more recent centroid never gets a later stage.
Stage = Literal["recent", "slipping", "lapsed"]
STAGES: tuple[Stage, ...] = ("recent", "slipping", "lapsed")


class PersonaRule(Section):
    name: Annotated[str, Field(min_length=1, max_length=48)]
    stage: Stage
    r: list[Level] = Field(default_factory=lambda: list(LEVELS))  # high = recent
    f: list[Level] = Field(default_factory=lambda: list(LEVELS))
    m: list[Level] = Field(default_factory=lambda: list(LEVELS))


def _default_personas() -> list[PersonaRule]:
    rules: list[tuple[str, Stage, list[Level], list[Level], list[Level]]] = [
        ("Champions", "recent", ["high"], ["high"], ["high"]),
        ("Loyal regulars", "recent", ["high"], ["high"], ["high", "mid", "low"]),
        ("Promising newcomers", "recent", ["high"], ["mid", "low"], ["high", "mid", "low"]),
        ("Slipping regulars", "slipping", ["mid"], ["high", "mid", "low"], ["high", "mid", "low"]),
        ("At-risk big spenders", "lapsed", ["low"], ["high"], ["high", "mid", "low"]),
        ("At-risk big spenders", "lapsed", ["low"], ["high", "mid", "low"], ["high"]),
        ("Lapsed low value", "lapsed", ["low"], ["high", "mid", "low"], ["high", "mid", "low"]),
    ]
    return [PersonaRule(name=n, stage=st, r=r, f=f, m=m) for n, st, r, f, m in rules]


class PersonaSettings(Section):
    high: float = 0.5  # centroid z (log1p scale, vs all customers) at or above: "high"
    low: float = -0.5  # at or below: "low"; between: "mid"
    rules: list[PersonaRule] = Field(default_factory=_default_personas)

    def rule_for(self, r: str, f: str, m: str) -> PersonaRule | None:
        """The first rule matching these recency, frequency and monetary levels."""
        return next((x for x in self.rules if r in x.r and f in x.f and m in x.m), None)

    @model_validator(mode="after")
    def _total_and_ordered(self) -> PersonaSettings:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        stage_of: dict[tuple[str, str, str], int] = {}
        for r in LEVELS:
            for f in LEVELS:
                for m in LEVELS:
                    rule = self.rule_for(r, f, m)
                    if rule is None:
                        raise ValueError(f"no rule matches levels r={r} f={f} m={m}: end with a "
                                         "rule that matches everything")
                    stage_of[r, f, m] = STAGES.index(rule.stage)
        for f in LEVELS:
            for m in LEVELS:
                stages = [stage_of[r, f, m] for r in LEVELS]  # recent first
                if stages != sorted(stages):
                    raise ValueError(f"a more recent centroid would get a more lapsed persona "
                                     f"(f={f} m={m}): reorder the rules or fix their stages")
        return self


class EngineSettings(Section):
    # Where the work that grows with the lines runs: pandas on this machine, or Apache Spark
    # ([spark]); the results are the same (SPEC.md, "Scale-out"). `run --backend` overrides it.
    backend: Literal["pandas", "spark"] = "pandas"


class SparkSettings(Section):
    """The Spark backend (engine/spark/): the session it builds and where it reads the lines."""

    master: str = "local[2]"
    app_name: Annotated[str, Field(min_length=1)] = "segmint"
    driver_memory: str = "2g"
    executor_memory: str = "2g"
    # Extra Spark properties, set on the session as they are (spark.* keys).
    conf: dict[str, str] = Field(default_factory=dict)
    shuffle_partitions: Annotated[int, Field(ge=1)] = 4
    # "store": the window's lines from the PostgreSQL store over JDBC; "parquet": from the
    # Parquet dataset at parquet_path (a path every executor can read).
    source: Literal["store", "parquet"] = "store"
    parquet_path: str = ""
    jdbc_partitions: Annotated[int, Field(ge=1)] = 4
    jdbc_jar: str = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java

    @model_validator(mode="after")
    def _parquet_needs_path(self) -> SparkSettings:
        if self.source == "parquet" and not self.parquet_path:
            raise ValueError('source = "parquet" needs parquet_path')
        return self


class BasketSettings(Section):
    min_support: Annotated[float, Field(gt=0, le=1)] = 0.02
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.3
    min_lift: Annotated[float, Field(ge=0)] = 1.0
    max_len: Annotated[int, Field(ge=2)] = 3
    max_basket_size: Annotated[int, Field(ge=2)] = 50
    min_baskets: Annotated[int, Field(ge=1)] = 20


class RecommendSettings(Section):
    top_n: Annotated[int, Field(ge=1, le=100)] = 10
    rule_weight: Annotated[float, Field(ge=0)] = 0.2
    cooccurrence_weight: Annotated[float, Field(ge=0)] = 0.0
    popularity_weight: Annotated[float, Field(ge=0)] = 0.01
    neighbour_weight: Annotated[float, Field(ge=0)] = 0.0
    trending_weight: Annotated[float, Field(ge=0)] = 0.0
    # Every score is multiplied by 1 + trending_boost x the product's trending figure (0: off).
    trending_boost: Annotated[float, Field(ge=0)] = 1.0
    ease_weight: Annotated[float, Field(ge=0)] = 1.0
    # EASE's dense items x items inverse costs about items^3: 0.2 s at 1,000, 2.3 s at 3,000.
    ease_items: Annotated[int, Field(ge=2, le=5000)] = 1000
    ease_lambda: Annotated[float, Field(gt=0)] = 300.0
    ease_half_life_days: Annotated[float, Field(ge=0)] = 60.0  # 0: every purchase counts alike
    neighbours: Annotated[int, Field(ge=1)] = 50
    neighbour_days: Annotated[int, Field(ge=1)] = 60
    neighbour_pool: Annotated[int, Field(ge=1)] = 2500
    trending_days: Annotated[int, Field(ge=1)] = 56
    max_neighbours: Annotated[int, Field(ge=1)] = 50
    max_basket_size: Annotated[int, Field(ge=2)] = 50


class EvaluateSettings(Section):
    cutoff: date | None = None
    k: Annotated[int, Field(ge=1)] = 10
    seed: int = 42  # implicit's ALS starting factors
    threads: Annotated[int, Field(ge=1)] = 2  # implicit's threads (BLAS kept to one)
    resamples: Annotated[int, Field(ge=0)] = 2000  # paired bootstrap against each baseline; 0: off


class ClvSettings(Section):
    """Predictive value (BG/NBD + Gamma-Gamma), fitted on every run."""

    enabled: bool = True
    time_unit: Literal["W", "D"] = "W"
    annual_discount_rate: Annotated[float, Field(ge=0, lt=1)] = 0.10
    # churn_risk: p_alive below high_below is "high", below medium_below "medium", else "low".
    churn_high_below: Annotated[float, Field(gt=0, lt=1)] = 0.3
    churn_medium_below: Annotated[float, Field(gt=0, le=1)] = 0.7
    # Fewer repeat buyers than this: no fit, a note (the rest of the run is published).
    min_repeat_customers: Annotated[int, Field(ge=2)] = 20
    # Customers first seen fewer days than this before as_of, or without a repeat purchase, get
    # the model's shrunk (population-weighted) estimate, flagged history = "short".
    min_history_days: Annotated[int, Field(ge=0)] = 30
    backtest_days: Annotated[int, Field(ge=7)] = 90
    compile_dir: str = "var/cache/pytensor"

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ClvSettings:
        if self.churn_high_below >= self.churn_medium_below:
            raise ValueError("churn_high_below must be below churn_medium_below")
        return self


class JobSpec(Section):
    cron: str = ""
    interval_seconds: Annotated[int, Field(ge=0)] = 0
    enabled: bool = True

    @model_validator(mode="after")
    def _one_trigger(self) -> JobSpec:
        if bool(self.cron) == bool(self.interval_seconds):
            raise ValueError("set exactly one of cron or interval_seconds")
        return self


class SchedulerSettings(Section):
    timezone: str = "Europe/London"
    inbox_dir: str = "var/inbox"
    misfire_grace_seconds: Annotated[int, Field(ge=1)] = 3600
    lock_ttl_seconds: Annotated[int, Field(ge=10)] = 6 * 3600
    pipeline: JobSpec = JobSpec(cron="0 2 * * *")
    inbox: JobSpec = JobSpec(interval_seconds=300)


class OfferTemplate(Section):
    offer_id: str
    target_classes: list[str]
    body: str
    # Also narrow the target by the run's CLV (engine/clv.py): churn-risk bands and a minimum
    # 365-day CLV. Either set: customers without a CLV row in the run are not targeted.
    churn_risk: list[Literal["high", "medium", "low"]] = Field(default_factory=list)
    min_clv_365d: float | None = None

    @property
    def needs_clv(self) -> bool:
        return bool(self.churn_risk) or self.min_clv_365d is not None


def _default_templates() -> list[OfferTemplate]:
    return [
        OfferTemplate(
            offer_id="vip-thanks",
            target_classes=["High value", "Most Growth"],
            body="Hi {first_name}, thanks for shopping with us. {product} is waiting: "
            "use code {offer_code} for 15% off this week. Reply STOP to opt out.",
        ),
        OfferTemplate(
            offer_id="welcome",
            target_classes=["New"],
            body="Welcome {first_name}! Try {product} with 10% off: code {offer_code}. "
            "Reply STOP to opt out.",
        ),
    ]


def _time_of_day(value: Any) -> Any:
    """A TOML time (21:00:00) or a string "21:00" / "21:00:00"; anything else (21, 21.5, true:
    pydantic would read a number as seconds after midnight) is refused at load."""
    if isinstance(value, time) or (isinstance(value, str)
                                   and len(value) in (5, 8) and value[2:3] == ":"):
        return value
    raise ValueError(f"{value!r} is not a time of day: write 21:00:00 (a TOML time) or "
                     '"21:00"')


class NotificationSettings(Section):
    enabled: bool = True
    templates: list[OfferTemplate] = Field(default_factory=_default_templates)
    max_segments: Annotated[int, Field(ge=1, le=10)] = 2
    frequency_cap_days: Annotated[int, Field(ge=0)] = 7
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    default_timezone: str = "Europe/London"
    default_region: str = "GB"
    rate_per_second: Annotated[float, Field(gt=0)] = 5.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 4
    backoff_seconds: Annotated[float, Field(ge=0)] = 0.5
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    status_callback_url: str = ""
    help_text: str = "Segmint offers: reply STOP to opt out, START to opt back in."
    fallback_first_name: str = "there"
    fallback_product: str = "our new arrivals"
    # Share of each offer's eligible customers kept as a holdout (never messaged for the offer);
    # 0 disables. The salt makes the assignment unguessable; changing it reshuffles new groups.
    holdout_share: Annotated[float, Field(ge=0.0, le=MAX_HOLDOUT_SHARE)] = 0.10
    holdout_salt: Annotated[str, Field(min_length=1, max_length=64)] = "segmint-holdout"

    _times_of_day = field_validator("quiet_start", "quiet_end", mode="before")(_time_of_day)


class OutcomeSettings(Section):
    # A purchase in (decided_at, decided_at + attribution_days] is a conversion of the offer.
    attribution_days: Annotated[int, Field(ge=ATTRIBUTION_DAYS_RANGE[0],
                                           le=ATTRIBUTION_DAYS_RANGE[1], strict=True)] = 14


class DashboardSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8050
    workers: Annotated[int, Field(ge=1)] = 2
    cache_seconds: Annotated[int, Field(ge=0)] = 300
    # How often `serve` looks for new data (a load or a new run while it runs) to warm the
    # default views again; 0: warm them at start only.
    rewarm_seconds: Annotated[int, Field(ge=0)] = 30
    secure_cookies: bool = False
    session_hours: Annotated[int, Field(gt=0)] = 12
    cache_dir: str = "var/cache/dashboard"
    # The columnar copy of the lines that date windows read (engine/store/columnar.py), one
    # folder per store below this one; "" keeps no copy (windows read the store).
    columnar_dir: str = "var/columnar"
    # Failed-login throttling (Flask-Limiter). The counts must be shared by every gunicorn worker
    # (a per-worker memory lets N workers take N times the attempts): Redis. While it is
    # unreachable each worker falls back to its own memory, with a warning.
    rate_limit_storage: str = "redis://127.0.0.1:6379/0"
    login_limits_per_user: str = "5 per minute; 20 per hour; 50 per day"
    login_limits_per_address: str = "20 per minute; 100 per hour; 300 per day"

    @model_validator(mode="after")
    def _limits_parse(self) -> DashboardSettings:
        from limits import parse_many

        for name in ("login_limits_per_user", "login_limits_per_address"):
            try:
                parse_many(getattr(self, name))
            except ValueError:
                raise ValueError(f"{name} = {getattr(self, name)!r} is not a list of limits "
                                 "such as '5 per minute; 20 per hour'") from None
        return self


class ExportSettings(Section):
    # Text cells starting with = + - @ tab or carriage return get a leading ' in CSV exports
    # (`segmint export`, the dashboard), so a spreadsheet shows them instead of running them.
    neutralise_formulas: bool = True


class Secrets(BaseModel):
    """Values that only ever come from the environment (field name = variable name, lower case)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    segmint_database_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    segmint_twilio_base_url: str = TWILIO_API_URL
    segmint_secret_key: str | None = None

    @property
    def twilio_configured(self) -> bool:
        sender = self.twilio_from_number or self.twilio_messaging_service_sid
        return bool(self.twilio_account_sid and self.twilio_auth_token and sender)


class Settings(Section):
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    rfm: RfmSettings = RfmSettings()
    clustering: ClusteringSettings = ClusteringSettings()
    classes: ClassSettings = ClassSettings()
    strategies: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STRATEGIES))
    personas: PersonaSettings = PersonaSettings()
    baskets: BasketSettings = BasketSettings()
    recommend: RecommendSettings = RecommendSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    clv: ClvSettings = ClvSettings()
    engine: EngineSettings = EngineSettings()
    spark: SparkSettings = SparkSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    notifications: NotificationSettings = NotificationSettings()
    outcomes: OutcomeSettings = OutcomeSettings()
    dashboard: DashboardSettings = DashboardSettings()
    export: ExportSettings = ExportSettings()
    # Not read from the file: where it was loaded from (relative paths resolve against it).
    base_dir: Path = Path(".")
    secrets: Secrets = Secrets()

    def path(self, value: str) -> Path:
        """A path setting resolved against the config file's folder."""
        candidate = Path(value)
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    @property
    def database_url(self) -> str:
        url = self.secrets.segmint_database_url or self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str(self.path(url[len(prefix):]))
        return url

    @property
    def database_url_setting(self) -> str:
        """Where database_url comes from, for messages: the variable or the config key."""
        return "SEGMINT_DATABASE_URL" if self.secrets.segmint_database_url else "database.url"


# Per persona, after the Korean source's cluster strategy table ("클러스터 별 활용 전략": the
# VIP, Loyal Customer / New Customers, Promising / About To Sleep and At-Risk / Cannot Lose Them
# rows), editable in config ([strategies], keyed by persona name).
DEFAULT_STRATEGIES: dict[str, str] = {
    "Champions": "VIP membership: early access to new products and services, priority delivery "
    "and service; recommend premium and high-priced items based on recent purchases.",
    "Loyal regulars": "Reward programme that recognises their loyalty and personal thank-you "
    "messages; extra benefits and news of the latest products so potential loyalists become "
    "loyal customers.",
    "Promising newcomers": "Welcome benefits and discounts on early purchases for a good first "
    "experience; introduce new products and services; seasonal promotions and seasonal product "
    "recommendations.",
    "Slipping regulars": "Personalised reminders and special offers to win back their attention; "
    "repurchase CRM messages and retention marketing, extra points or discounts; bundle "
    "suggestions from items bought together.",
    "At-risk big spenders": "Personalised benefits (discounts, membership perks, exclusive "
    "promotions) and special events or early access to stop them leaving; recommend from the "
    "products and categories they showed interest in before.",
    "Lapsed low value": "Rewards and discounts to prevent churn, and a short survey asking why "
    "they left, to improve the service and products; low-cost channels only.",
}


def _error_line(source: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{source}: {key}: {message}"


def load_settings(
    path: Path | str | None = None, *, environ: dict[str, str] | None = None
) -> Settings:
    """Read config.toml (or PATH), apply environment overrides, validate; raise SettingsError."""
    config_path = Path(path) if path is not None else DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if config_path.exists():
        try:
            with config_path.open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config_path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            line = exc.object[:exc.start].count(b"\n") + 1
            raise SettingsError(f"{config_path}: not UTF-8 (line {line}, byte "
                                f"0x{exc.object[exc.start]:02x}): save the file as UTF-8") \
                from None
    elif path is not None:
        raise SettingsError(f"{config_path}: config file not found")
    for forbidden in ("base_dir", "secrets"):
        if forbidden in data:
            raise SettingsError(f"{config_path}: {forbidden}: unknown setting")
    env = dict(os.environ if environ is None else environ)
    try:
        secrets = Secrets(**{key.lower(): value for key, value in env.items()
                             if key.lower() in Secrets.model_fields and value})
        settings = Settings(**data, base_dir=config_path.resolve().parent, secrets=secrets)
    except ValidationError as exc:
        raise SettingsError(_error_line(str(config_path), exc)) from None
    return settings
