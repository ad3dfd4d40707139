"""Typed settings: config.toml loaded once at the entry point, environment overrides on top.

Every section is a pydantic model that forbids unknown keys, so a typo in config.toml stops the
program with one line naming the key instead of being silently ignored. Secrets (Twilio
credentials, the dashboard's cookie key) come only from the environment.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class BasketSettings(Section):
    min_support: Annotated[float, Field(gt=0, le=1)] = 0.02
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.3
    min_lift: Annotated[float, Field(ge=0)] = 1.0
    max_len: Annotated[int, Field(ge=2)] = 3
    max_basket_size: Annotated[int, Field(ge=2)] = 50
    min_baskets: Annotated[int, Field(ge=1)] = 20


class RecommendSettings(Section):
    top_n: Annotated[int, Field(ge=1, le=100)] = 10
    rule_weight: Annotated[float, Field(ge=0)] = 0.3
    cooccurrence_weight: Annotated[float, Field(ge=0)] = 1.0
    popularity_weight: Annotated[float, Field(ge=0)] = 0.1
    max_neighbours: Annotated[int, Field(ge=1)] = 50
    max_basket_size: Annotated[int, Field(ge=2)] = 50


class EvaluateSettings(Section):
    cutoff: date | None = None
    k: Annotated[int, Field(ge=1)] = 10


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


class OutcomeSettings(Section):
    # A purchase in (decided_at, decided_at + attribution_days] is a conversion of the offer.
    attribution_days: Annotated[int, Field(ge=ATTRIBUTION_DAYS_RANGE[0],
                                           le=ATTRIBUTION_DAYS_RANGE[1], strict=True)] = 14


class DashboardSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8050
    workers: Annotated[int, Field(ge=1)] = 2
    cache_seconds: Annotated[int, Field(ge=0)] = 300
    secure_cookies: bool = False
    session_hours: Annotated[int, Field(gt=0)] = 12
    cache_dir: str = "var/cache/dashboard"


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
    baskets: BasketSettings = BasketSettings()
    recommend: RecommendSettings = RecommendSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    notifications: NotificationSettings = NotificationSettings()
    outcomes: OutcomeSettings = OutcomeSettings()
    dashboard: DashboardSettings = DashboardSettings()
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


# Per value tier, after the Korean source's cluster strategy table (editable in config).
DEFAULT_STRATEGIES: dict[str, str] = {
    "High value": "VIP membership: early access to new products, priority delivery and service, "
    "premium and high-priced recommendations based on recent purchases.",
    "Mid value": "Loyalty rewards and personal thank-you messages; extra benefits that grow "
    "potential loyalists into loyal customers; seasonal promotions.",
    "Low value": "Win-back: time-limited discounts, reminders of popular seasonal products and "
    "re-engagement offers before they lapse; low-cost channels only.",
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
