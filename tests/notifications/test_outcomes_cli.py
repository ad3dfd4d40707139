"""The whole loop once through the command line: demo data with a known effect, a live pass with
a holdout against the fake Twilio, then `outcomes --json` and the exports."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from conftest import write_config
from fake_twilio import FakeTwilio
from test_offer_cli import cli_env, summary_count

from engine.columns import KPI_COLUMNS, OFFER_EXPORT_COLUMNS, OUTCOME_FIELDS
from engine.store import get_engine
from tests.conftest import run_segmint
from tests.notifications import ledger

pytestmark = pytest.mark.slow


def test_demo_to_outcomes_finds_the_true_uplift_and_holds_out_for_real(
        tmp_path: Path, sqlite_url: str, fake_twilio: FakeTwilio) -> None:
    config = write_config(tmp_path, "holdout_share = 0.1\n")
    env = cli_env(sqlite_url, fake_twilio)

    def segmint(*args: str) -> str:
        result = run_segmint("--config", str(config), *args, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    made = segmint("generate-demo-data", "demo", "--customers", "2000", "--past-offer")
    truth = float(re.search(r"true uplift ([+-][\d.]+) points", made).group(1))  # type: ignore[union-attr]
    assert truth == 10.0
    segmint("init-db")
    loaded = segmint("ingest", "demo/transactions.csv", "--customers", "demo/customers.csv",
                     "--offer-pass", "demo/offer_pass.csv")
    assert re.search(r"offer pass .*: [\d,]+ ledger rows recorded, 0 already there", loaded)
    segmint("run")
    passed = segmint("send-offers")
    assert summary_count(passed, "holdout") > 0 and summary_count(passed, "sent") > 0

    # No number held out of this pass's offers ever reached Twilio (the two offers target
    # different classes; a customer held out of the demo's past offer may get this pass's).
    engine = get_engine(sqlite_url)
    rows = ledger.all_messages(engine)
    engine.dispose()
    held = {row.phone for row in rows
            if row.assigned_group == "holdout" and row.offer_id != "demo-autumn"}
    reached = {value for request in fake_twilio.requests
               for key, value in (*request.form.items(), *request.query.items())
               if key != "From" and value.startswith("+")}
    assert held and not held & reached

    records = json.loads(segmint("outcomes", "--json"))
    assert all(list(record) == OUTCOME_FIELDS for record in records)
    demo = next(record for record in records if record["offer_id"] == "demo-autumn")
    assert demo["uplift_ci_low"] <= truth <= demo["uplift_ci_high"]
    assert demo["treatment"] + demo["holdout"] == sum(
        row.offer_id == "demo-autumn" for row in rows)
    one = json.loads(segmint("outcomes", "--offer", "demo-autumn", "--json"))
    assert one == [demo]
    assert "verdict: +" in segmint("outcomes", "--offer", "demo-autumn")

    offers = list(csv.reader(io.StringIO(segmint("export", "offers"))))
    assert offers[0] == OFFER_EXPORT_COLUMNS and len(offers) == len(rows) + 1
    assert {line[3] for line in offers[1:]} == {"treatment", "holdout"}
    kpis = list(csv.reader(io.StringIO(segmint("export", "kpis"))))
    assert kpis[0] == KPI_COLUMNS
    assert {line[0] for line in kpis[1:]} == {"class", "rfm_segment", "persona"}
