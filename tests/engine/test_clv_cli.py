"""CLV end to end through the real console script: the CDNOW sample through the generic
mapping, `run --until 1997-09-30 --as-of 1997-09-30`, `clv --json` and `export clv`, on SQLite
and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from engine.clv import BgNbdParams, expected_purchases
from engine.columns import CLV_COLUMNS
from tests.conftest import run_segmint
from tests.engine.realdata import CDNOW
from tests.engine.test_clv import PUBLISHED_BGNBD, PUBLISHED_GG

CONFIG = """
[ingest.mapping]
customer_id = "customer_id"
timestamp = "date"
invoice = ""
stock_code = ""
description = ""
quantity = ""
unit_price = ""
amount = "spend"
country = ""
timestamp_format = "%Y%m%d"

[clustering]
k_max = 6
n_init = 3
gap_references = 2
"""


@pytest.mark.slow
def test_cdnow_end_to_end_reproduces_the_published_figures(tmp_path: Path, db_url: str) -> None:
    if not CDNOW.exists():
        pytest.skip(f"{CDNOW} is absent (../shared is not beside the checkout)")
    (tmp_path / "config.toml").write_text(CONFIG)
    env = {"SEGMINT_DATABASE_URL": db_url}
    for args in (["init-db"], ["ingest", str(CDNOW), "--preset", "generic"],
                 ["run", "--until", "1997-09-30", "--as-of", "1997-09-30"]):
        # The first fit on a machine compiles the models (minutes on a loaded machine).
        result = run_segmint(*args, cwd=tmp_path, env=env, timeout=1200)
        assert result.returncode == 0, result.stderr

    result = run_segmint("clv", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    fit = json.loads(result.stdout)
    assert fit["time_unit"] == "W"
    for name, value in PUBLISHED_BGNBD.items():
        assert fit["bgnbd"][name] == pytest.approx(value, rel=0.01), name
    for name, value in PUBLISHED_GG.items():
        assert fit["gamma_gamma"][name] == pytest.approx(value, rel=0.01), name
    # The paper's example customer (x 2, t_x 30.43, T 38.86): 1.226 purchases in 39 weeks.
    printed = BgNbdParams(**fit["bgnbd"])
    assert expected_purchases(printed, 39, 2, 30.43, 38.86) == pytest.approx(1.226, rel=0.01)
    backtest = fit["backtest"]
    assert backtest["cutoff"] == "1997-07-02"
    assert [row["frequency"] for row in backtest["calibration"]][-1] == "7+"
    assert {"overall", "by_customer_class", "by_rfm_segment"} <= set(backtest)

    result = run_segmint("export", "clv", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == CLV_COLUMNS
    assert len(rows) == 1 + 2357
    by_id = {row[0]: dict(zip(CLV_COLUMNS, row, strict=True)) for row in rows[1:]}
    # Customer ids stay text ("00004"); frequency is repeat purchase days, T in weeks.
    first = by_id["00004"]
    assert (first["frequency"], round(float(first["T"]), 2)) == ("2", 38.86)
    assert {row["churn_risk"] for row in by_id.values()} <= {"high", "medium", "low"}

    text = run_segmint("clv", cwd=tmp_path, env=env)
    assert text.returncode == 0 and "BG/NBD: r = 0.24" in text.stdout


def test_clv_of_a_run_without_clv_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")
    env = {"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    assert run_segmint("init-db", cwd=tmp_path, env=env).returncode == 0
    result = run_segmint("clv", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr


def test_compiled_code_goes_to_the_configured_folder(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[clv]\ncompile_dir = "var/pt"\n')
    env = {"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "PYTENSOR_FLAGS": ""}
    assert run_segmint("init-db", cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "var" / "pt").is_dir()
    # A base_compiledir in PYTENSOR_FLAGS wins over the config (environment over config).
    env["PYTENSOR_FLAGS"] = f"base_compiledir={tmp_path / 'elsewhere'}"
    (tmp_path / "config.toml").write_text('[clv]\ncompile_dir = "var/other"\n')
    assert run_segmint("init-db", cwd=tmp_path, env=env).returncode == 0
    assert not (tmp_path / "var" / "other").exists()
