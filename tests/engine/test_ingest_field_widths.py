"""Text fields wider than their stored column (engine.models) are rejected lines, with the
file, line and reason in the rejects report, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.ingest import ingest_file
from engine.store.lines_read import load_lines
from tests.conftest import make_settings
from tests.engine.test_ingest import GOOD_ROWS, write_csv

FORTY = "X" * 40
SIXTY_FIVE = "Y" * 65
# Multi-byte characters: a width counts characters, as VARCHAR(n) does, not bytes.
THIRTY_TWO_WIDE = "é" * 32


def test_over_long_fields_are_rejected_lines_and_the_rest_loads(db, tmp_path: Path,
                                                                 db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, '[ingest]\nrejects_dir = "rejects"\n')
    rows = [
        GOOD_ROWS[0],
        f"{FORTY},71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",
        f"536366,{SIXTY_FIVE},HAND WARMER,6,2010-12-01 08:28:00,1.85,17850,United Kingdom",
        f"536367,22745,POPPY'S PLAYHOUSE,6,2010-12-01 08:34:00,2.1,{SIXTY_FIVE},United Kingdom",
        f"536368,22746,POPPY'S KITCHEN,6,2010-12-01 08:35:00,2.1,13047,{SIXTY_FIVE}",
        f"{THIRTY_TWO_WIDE},22747,POPPY'S BEDROOM,6,2010-12-01 08:36:00,2.1,13047,France",
        GOOD_ROWS[4],
    ]
    source = write_csv(tmp_path / "wide.csv", rows)

    summary = ingest_file(db, settings, source, preset="online-retail")

    assert (summary.lines_read, summary.loaded, summary.rejected) == (7, 3, 4)
    report = pd.read_csv(summary.rejects_path, dtype=str)
    assert Path(summary.rejects_path).name.startswith("wide.csv.")
    assert report[["line", "reason"]].values.tolist() == [
        ["3", f"invoice longer than 32 characters '{FORTY}'"],
        ["4", f"stock_code longer than 64 characters '{SIXTY_FIVE[:40]}'"],
        ["5", f"customer_id longer than 64 characters '{SIXTY_FIVE[:40]}'"],
        ["6", f"country longer than 64 characters '{SIXTY_FIVE[:40]}'"],
    ]
    assert sorted(load_lines(engine=db)["invoice"]) == sorted(["536365", THIRTY_TWO_WIDE, "536380"])
