"""Fixtures for the notification tests: the fake Twilio server, settings pointing at it, and a
published run built directly through the models (no dependency on the engine's pipeline)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fake_twilio import FakeTwilio

from engine.models import Customer, CustomerResult, Recommendation, SegmentationRun
from engine.settings import Settings, load_settings
from engine.store import offers as store
from tests.conftest import session_scope

# Fast, clock-independent defaults: no quiet hours unless a test sets them; no holdout unless a
# test sets one (tests/notifications/test_offer_holdouts.py).
TEST_CONFIG = """
[notifications]
quiet_start = 00:00:00
quiet_end = 00:00:00
backoff_seconds = 0.01
request_timeout_seconds = 1.0
rate_per_second = 1000.0
max_retries = 3
holdout_share = 0.0
"""


@dataclass(frozen=True)
class Person:
    customer_id: str
    phone: str | None = "+447400123401"
    first_name: str | None = "Ann"
    consent: bool = True
    customer_class: str = "High value"
    product: str | None = "WHITE HANGING HEART T-LIGHT HOLDER"
    timezone: str | None = None
    phone_status: str = "unknown"


def people(count: int, *, start: int = 1, **fields: object) -> list[Person]:
    """count customers C0001... with distinct valid UK mobile numbers."""
    return [Person(customer_id=f"C{n:04d}", phone=f"+4474001234{n:02d}", **fields)  # type: ignore[arg-type]
            for n in range(start, start + count)]


def publish_run(engine, persons: list[Person]) -> int:  # type: ignore[no-untyped-def]
    """A succeeded segmentation run with one customer_result (and top recommendation) each."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        run = SegmentationRun(status="succeeded", started_at=now, finished_at=now,
                              as_of=date(2011, 12, 10), k=3, n_customers=len(persons))
        session.add(run)
        session.flush()
        assert run.id is not None
        for person in persons:
            if session.get(Customer, person.customer_id) is None:
                session.add(Customer(customer_id=person.customer_id, first_name=person.first_name,
                                     phone=person.phone, sms_consent=person.consent,
                                     timezone=person.timezone, phone_status=person.phone_status))
            session.add(CustomerResult(
                run_id=run.id, customer_id=person.customer_id, recency_days=10, frequency=5,
                monetary=900.0, r_score=5, f_score=4, m_score=5, rfm_code="545", rfm_score=545,
                rfm_segment="VIP", rfm_grid_segment="Champions", cluster=0,
                value_tier="High value", customer_class=person.customer_class))
            if person.product:
                session.add(Recommendation(run_id=run.id, customer_id=person.customer_id, rank=1,
                                           stock_code="85123A", description=person.product,
                                           score=1.0, reason="popular in your segment"))
                session.add(Recommendation(run_id=run.id, customer_id=person.customer_id, rank=2,
                                           stock_code="22423", description="SECOND CHOICE",
                                           score=0.5, reason="popular in your segment"))
        return run.id


def leave_stale_claim(engine) -> None:  # type: ignore[no-untyped-def]
    """C0001's 'sending' row from a pass that died a day ago (the next pass reconciles it first)."""
    store.claim_offer(engine=engine, offer_key="vip-thanks:C0001", offer_id="vip-thanks",
                      customer_id="C0001", run_id=None, phone="+447400123401", body="x",
                      segments=1, status="sending", now=datetime.now(UTC) - timedelta(days=1))


def write_config(tmp_path: Path, extra: str = "") -> Path:
    """config.toml with TEST_CONFIG's [notifications] keys, overridden by the lines of extra."""
    overridden = {line.split("=")[0].strip() for line in extra.splitlines() if "=" in line}
    kept = [line for line in TEST_CONFIG.splitlines()
            if "=" not in line or line.split("=")[0].strip() not in overridden]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(kept).replace("[notifications]", "[notifications]\n" + extra, 1))
    return path


def settings_for(tmp_path: Path, db_url: str, env: dict[str, str], extra: str = "") -> Settings:
    return load_settings(write_config(tmp_path, extra),
                         environ={"SEGMINT_DATABASE_URL": db_url, **env})


def live_settings(tmp_path: Path, db_url: str, fake: FakeTwilio, extra: str = "") -> Settings:
    return settings_for(tmp_path, db_url, fake.env(), extra)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture
def live(tmp_path: Path, db_url: str, fake_twilio: FakeTwilio) -> Settings:
    """Settings with Twilio credentials pointing at the fake server."""
    return live_settings(tmp_path, db_url, fake_twilio)
