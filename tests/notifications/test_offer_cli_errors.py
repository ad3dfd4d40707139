"""Issue 19, item 4: `send-offers` on a read-only or locked database printed a traceback with a
customer's unmasked phone number and the message; now one `error:` line naming the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import people, publish_run, write_config
from sqlalchemy import create_engine, text

from tests.conftest import run_segmint

PHONE = "+447400123401"


def without_twilio(url: str) -> dict[str, str]:
    return {"SEGMINT_DATABASE_URL": url, **{name: "" for name in (
        "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER",
        "TWILIO_MESSAGING_SERVICE_SID")}}


@pytest.fixture
def locked_ledger(postgres_url: str) -> Iterator[None]:
    engine = create_engine(postgres_url)
    connection = engine.connect()
    connection.execute(text("LOCK TABLE offer_message IN ACCESS EXCLUSIVE MODE"))
    yield
    connection.rollback()
    connection.close()
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["read-only", "locked"])
def test_send_offers_on_a_database_that_refuses_writes_is_one_line_without_the_customer(
        tmp_path: Path, postgres_url: str, fault: str, request: pytest.FixtureRequest) -> None:
    from engine.store import get_engine, init_db

    engine = get_engine(postgres_url)
    init_db(engine=engine)
    publish_run(engine, people(1))
    config = write_config(tmp_path)
    if fault == "read-only":
        url = postgres_url + "%20-cdefault_transaction_read_only%3Don"
    else:
        request.getfixturevalue("locked_ledger")
        url = postgres_url + "%20-clock_timeout%3D300"
    result = run_segmint("--config", str(config), "send-offers", "--dry-run", cwd=tmp_path,
                         env=without_twilio(url))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("20")]
    assert len(errors) == 1 and errors[0].startswith("error: database postgresql+psycopg://"), \
        result.stderr
    assert PHONE not in result.stderr and "Hi Ann" not in result.stderr
    assert "3401" not in result.stdout or PHONE not in result.stdout
