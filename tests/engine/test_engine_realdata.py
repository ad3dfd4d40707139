"""Reference figures on the UCI Online Retail data set (read straight into the lines frame)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from engine.classes import CLASSES
from engine.pipeline import segment
from engine.rfm import rfm_table
from engine.settings import Settings
from tests.engine.realdata import read_online_retail

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def online_retail() -> pd.DataFrame:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "online_retail.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside the checkout)")
    return read_online_retail(path)


def test_reference_rfm_figures(online_retail: pd.DataFrame) -> None:
    codes = Settings().ingest.non_product_codes
    table = rfm_table(online_retail, as_of=date(2011, 12, 10), non_product_codes=codes)
    # 4,372 ids; 4,339 with a purchase; 4 of those bought only postage/fees/manual lines.
    assert len(table) == 4335
    assert table["customer_id"].is_unique
    assert table["frequency"].sum() == online_retail.loc[
        ~online_retail["is_return"] & online_retail["customer_id"].notna()
        & ~online_retail["stock_code"].isin(codes)].groupby("customer_id")["invoice"] \
        .nunique().sum()
    top = table.set_index("customer_id").loc["14646"]
    assert top["frequency"] == 73 and top["recency_days"] == 2
    assert len(rfm_table(online_retail, as_of=date(2011, 12, 10))) == 4339


def test_reference_run(online_retail: pd.DataFrame) -> None:
    lines = online_retail.assign(stock_code=online_retail["stock_code"])
    result = segment(lines, None, Settings())
    assert result.as_of == date(2011, 12, 10)
    assert result.n_customers == 4335
    assert result.k == 3
    assert result.diagnostics["nominations"]["silhouette"] == 3
    assert list(result.profiles["value_tier"]) == ["High value", "Mid value", "Low value"]
    counts = result.segments["customer_class"].value_counts()
    assert set(counts.index) == set(CLASSES)
    assert result.profiles["revenue_share"].iloc[0] > 0.5
    assert result.rules is not None and len(result.rules) > 0
