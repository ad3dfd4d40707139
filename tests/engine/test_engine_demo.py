"""On the synthetic demo data (engine.demo) every one of the six classes is non-empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.classes import CLASSES
from engine.demo import generate_demo_data
from engine.ingest import ingest_file
from engine.pipeline import execute_run
from engine.store import get_engine, init_db
from engine.store import results as result_store
from engine.store import runs as run_store
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("customers", "seed"), [(600, 7), (2000, 42)])
def test_every_class_is_non_empty_on_demo_data(tmp_path: Path, sqlite_url: str, customers: int,
                                               seed: int) -> None:
    data = generate_demo_data(tmp_path / "demo", customers=customers, seed=seed)
    settings = make_settings(tmp_path, sqlite_url)
    db = get_engine(settings.database_url)
    init_db(engine=db)
    ingest_file(db, settings, data.transactions_path, customers=data.customers_path)
    run_id = execute_run(db, settings)
    classes = result_store.read_segments(engine=db, run_id=run_id)["customer_class"].value_counts()
    assert set(classes.index) == set(CLASSES), classes.to_dict()
    assert classes.sum() == run_store.get_run(engine=db, run_id=run_id)["n_customers"]
