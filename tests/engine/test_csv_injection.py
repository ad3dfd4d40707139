"""Issue 19, item 5: customer ids, stock codes and descriptions such as `=1+1`, `@SUM(1+1)` or
`=HYPERLINK(...)` went unchanged into `segmint export` files and the dashboard's CSV export, where
a spreadsheet runs them. Text cells starting with = + - @ tab or carriage return get a leading
apostrophe (OWASP's CSV injection advice); numbers never change; [export] neutralise_formulas =
false writes raw values for consumers that want them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.exports import export_frame, write_csv
from engine.ingest import ingest_file
from engine.pipeline import execute_run
from engine.settings import Settings
from engine.store import get_engine, init_db
from tests.conftest import make_settings
from tests.engine.factories import population, write_generic_csv

HYPERLINK = '=HYPERLINK("http://evil.example/","x")'
EVIL_IDS = {"H000": "=1+1", "H001": "@SUM(1+1)", "H002": HYPERLINK, "M000": "+1-1",
            "M001": "-2+3"}
EVIL_CODES = {"P00": "=2+2", "P01": "@P01"}


def read_cells(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_text_cells_that_a_spreadsheet_would_run_are_neutralised_numbers_are_not() -> None:
    frame = pd.DataFrame({
        "customer_id": ["=1+1", "@SUM(1+1)", HYPERLINK, "-2+3", "\t=1", "-1e5", "17850", "-17"],
        "rank": [1, 2, 3, 4, 5, 6, 7, 8],
        "stock_code": ["+A", "B", "C", "D", "E", "F", "G", "H"],
        "description": ["x", "y", "z", "w", "v", "u", "t", "s"],
        "score": [-1.5, 2.0, 0.5, -0.25, 1.0, 1.0, 1.0, 1.0],
        "reason": ["-", "ok", "ok", "ok", "ok", "ok", "ok", "ok"],
    })
    buffer = io.StringIO()
    write_csv("recommendations", frame, buffer)
    rows = read_cells(buffer.getvalue())
    assert [row["customer_id"] for row in rows] == [
        "'=1+1", "'@SUM(1+1)", "'" + HYPERLINK, "'-2+3", "'\t=1", "-1e5", "17850", "-17"]
    assert rows[0]["stock_code"] == "'+A" and rows[0]["reason"] == "'-"
    assert [row["score"] for row in rows[:4]] == ["-1.5", "2.0", "0.5", "-0.25"]  # numbers stay
    carriage = export_frame("recommendations", frame.assign(reason="\r=1"))
    assert set(carriage["reason"]) == {"'\r=1"}


def test_raw_values_when_asked() -> None:
    frame = pd.DataFrame({"customer_id": ["=1+1"], "rank": [1], "stock_code": ["@A"],
                          "description": ["x"], "score": [-1.0], "reason": ["r"]})
    buffer = io.StringIO()
    write_csv("recommendations", frame, buffer, neutralise=False)
    assert read_cells(buffer.getvalue())[0]["customer_id"] == "=1+1"


@dataclass
class Evil:
    folder: Path
    settings: Settings


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evil]:
    """A database whose lines carry formula-like customer ids and stock codes, segmented."""
    folder = tmp_path_factory.mktemp("evil")
    lines = population()
    lines["customer_id"] = lines["customer_id"].replace(EVIL_IDS)
    lines["stock_code"] = lines["stock_code"].replace(EVIL_CODES)
    lines["description"] = lines["stock_code"].map(lambda code: f"{code} description")
    source = write_generic_csv(lines, folder / "evil.csv")
    settings = make_settings(folder, f"sqlite:///{folder / 'segmint.db'}")
    engine = get_engine(settings.database_url)
    init_db(engine=engine)
    ingest_file(engine, settings, source)
    execute_run(engine, settings)
    yield Evil(folder, settings)
    engine.dispose()


def _export(evil: Evil, kind: str, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch, config: str = "") -> list[dict[str, str]]:
    from segmint.cli import main

    (evil.folder / "export.toml").write_text(config)
    monkeypatch.setenv("SEGMINT_DATABASE_URL", evil.settings.database_url)
    capsys.readouterr()
    target = evil.folder / f"{kind}.csv"
    try:
        main(["--config", str(evil.folder / "export.toml"), "export", kind, "-o", str(target)])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return read_cells(target.read_text())


def test_segmint_export_neutralises_formula_cells(evil: Evil, capsys, monkeypatch) -> None:
    segments = {row["customer_id"] for row in _export(evil, "segments", capsys, monkeypatch)}
    assert {"'=1+1", "'@SUM(1+1)", "'" + HYPERLINK, "'+1-1", "'-2+3"} <= segments
    assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for cell in segments)
    recommendations = _export(evil, "recommendations", capsys, monkeypatch)
    cells = [value for row in recommendations for value in row.values()]
    assert not any(cell.startswith(("=", "@")) for cell in cells), cells[:20]
    assert any(cell == "'=2+2" for cell in cells) or any(cell == "'@P01" for cell in cells)


def test_segmint_export_writes_raw_values_when_configured(evil: Evil, capsys,
                                                          monkeypatch) -> None:
    rows = _export(evil, "segments", capsys, monkeypatch,
                   "[export]\nneutralise_formulas = false\n")
    assert "=1+1" in {row["customer_id"] for row in rows}


def test_the_dashboard_csv_export_neutralises_formula_cells(evil: Evil) -> None:
    from flask import session

    from dashboard.app import create_app

    app = create_app(evil.settings, secret_key="test")
    # The page module as Dash imported it: importing it under another name would register the
    # page twice and break every later app in this process (duplicate nav-link ids).
    import sys

    import dash

    export_csv = next(sys.modules[name].export_csv for name, page in dash.page_registry.items()
                      if page["path"] == "/segments")

    with app.server.test_request_context("/segments"):
        session["user"], session["role"] = "ann", "analyst"
        sent: dict[str, Any] = export_csv(1, None, None)
    rows = read_cells(sent["content"])
    ids = {row["customer_id"] for row in rows}
    assert {"'=1+1", "'@SUM(1+1)", "'" + HYPERLINK, "'-2+3"} <= ids
    assert not any(value.startswith(("=", "+", "@")) for row in rows for value in row.values()
                   if value and not value.lstrip("+-").replace(".", "", 1).isdigit())
