"""The benchmark scripts run end to end on tiny data, so they cannot silently rot.

No timings are asserted: only that every stage is measured and reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import notebook_baseline, segmint_side
from bench.tiny_data import write_tiny_online_retail

REPO = Path(__file__).resolve().parent.parent.parent


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    assert write_tiny_online_retail(path) > 200
    return path


def test_notebook_baseline_runs_every_stage(tiny_csv: Path, tmp_path: Path) -> None:
    completed = _bench("bench.notebook_baseline", "--data", str(tiny_csv), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    printed = [line.split()[0] for line in completed.stdout.splitlines() if line.strip()]
    assert printed == list(notebook_baseline.STAGES)


@pytest.mark.slow
def test_harness_reports_every_stage_and_ratio(tiny_csv: Path, tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    completed = _bench("bench.run", "--data", str(tiny_csv), "--repeat", "1", "--json",
                       str(figures), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    expected = ([f"notebook {stage}" for stage in notebook_baseline.STAGES]
                + [f"segmint {stage}" for stage in segmint_side.STAGES]
                + ["pandas to-sql", "notebook run (rfm..write)"])
    for row in expected:
        assert f"\n{row} " in completed.stdout, f"{row!r} missing from:\n{completed.stdout}"
    saved = json.loads(figures.read_text())
    assert set(expected) <= set(saved["rows"])
    assert all(row["seconds"] > 0 and row["max_rss_mib"] > 0 for row in saved["rows"].values())
    assert {"run speed-up (notebook rfm..write / segmint run)",
            "ingest time (segmint ingest / pandas to_sql)"} <= set(saved["ratios"])
    segmint_run = saved["raw"][0]
    notes = {r["stage"]: r["notes"] for r in segmint_run if r["side"] == "segmint"}
    assert notes["ingest"]["loaded"] > 0
    assert notes["run"]["run_id"] >= 1


@pytest.mark.slow
def test_scale_then_dashboard_load_on_a_tiny_demo(tmp_path: Path) -> None:
    """bench.scale on a few thousand synthetic lines, then bench.load_dashboard against the
    database it leaves: every page is rendered by every client without an error."""
    scale_json, load_json = tmp_path / "scale.json", tmp_path / "load.json"
    completed = _bench("bench.scale", "--lines", "3000", "--calibration-customers", "40",
                       "--workdir", str(tmp_path / "scale"), "--json", str(scale_json),
                       cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    size = json.loads(scale_json.read_text())["sizes"][0]
    assert size["lines"] > 1000
    assert size["ingest"]["notes"]["loaded"] == size["lines"]
    assert size["run"]["notes"]["run_id"] == 1
    assert "run s" in completed.stdout

    database = tmp_path / "scale" / "lines-3000" / "segmint" / "segmint.db"
    completed = _bench("bench.load_dashboard", "--serve", "--database-url",
                       f"sqlite:///{database}", "--workdir", str(tmp_path / "load"),
                       "--clients", "2", "--rounds", "1", "--json", str(load_json), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(load_json.read_text())
    assert result["failures"] == []
    assert result["all"]["errors"] == 0
    rendered = {label.split()[0] for label in result["callbacks"] if "render" in label}
    assert rendered == set(result["pages"]) and len(rendered) >= 5
    assert any("recs-lookup-result" in label for label in result["callbacks"])


@pytest.mark.slow
def test_clv_steps_times_every_step_on_a_store(tmp_path: Path) -> None:
    """bench.clv_steps on a small demo store: one table row per CLV step, then the total."""
    from tests.conftest import run_segmint

    config = tmp_path / "config.toml"
    config.write_text(f'[clv]\ncompile_dir = "{REPO / "var" / "cache" / "pytensor"}"\n')
    env = {"SEGMINT_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PYTHONPATH": str(REPO)}
    for args in (["generate-demo-data", "data", "--customers", "200", "--seed", "3"],
                 ["init-db"], ["ingest", "data/transactions.csv"]):
        done = run_segmint("--config", str(config), *args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    completed = _bench("bench.clv_steps", "--database-url", env["SEGMINT_DATABASE_URL"],
                       "--config", str(config), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    steps = [line.split(" | ")[0].lstrip("| ") for line in completed.stdout.splitlines()
             if line.startswith("| ") and not line.startswith("| step")]
    assert steps == ["import pymc-marketing", "purchase days", "summary", "fit BG/NBD",
                     "fit Gamma-Gamma", "score", "backtest summary", "backtest fit BG/NBD",
                     "backtest fit Gamma-Gamma", "total"]
    assert "200 customers" in completed.stdout and "peak RSS" in completed.stdout


def test_window_steps_times_every_step_from_the_copy_and_the_store(tmp_path: Path) -> None:
    """bench.window_steps on a small demo store with a run: every step, from the columnar copy
    the load wrote, then from the store."""
    from tests.conftest import run_segmint

    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///store.db"\n[clv]\nenabled = false\n')
    env = {"PYTHONPATH": str(REPO)}
    for args in (["generate-demo-data", "data", "--customers", "150", "--seed", "3"],
                 ["init-db"], ["ingest", "data/transactions.csv"], ["run"]):
        done = run_segmint("--config", str(config), *args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    for extra, source in (([], "the columnar copy"), (["--store"], "the store")):
        completed = _bench("bench.window_steps", "--config", str(config), "--since",
                           "2025-03-01", "--until", "2025-05-31", *extra,
                           cwd=tmp_path)
        assert completed.returncode == 0, completed.stderr
        assert f"reading {source}" in completed.stdout
        steps = [line[:18].strip() for line in completed.stdout.splitlines()
                 if " s wall " in line]
        assert steps == ["run rows", "sign-up dates", "history", "window segments",
                         "segment KPIs", "window products"]
        assert "window customers" in completed.stdout and "peak" in completed.stdout
