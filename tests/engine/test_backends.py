"""One suite, both backends (SPEC.md, "Scale-out"): the same run on pandas and on Spark
(local[2], the test session's one SparkSession) gives every customer the same RFM, scores,
segments, cluster, tier and class, the same basket rules with the same metrics, the same CLV
figures, the same recommendations (products, ranks, scores and reasons, frame-equal) and the
same sales figures (KPIs, months, products, products per class and cluster); on
hand-made lines, on the real Online Retail data, and read from the PostgreSQL store over JDBC.

The Spark run reads its lines from Parquet (written here) or the store. CLV's inputs are
compared to a relative 1e-9, its fitted figures to 1e-3: the inputs are sums of the same floats
added in another order, and the fit's optimiser turns their last bits into slightly different
(equally good) parameters.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.ingest import ingest_file
from engine.pipeline import RunResult, execute_run, segment, segment_lines
from engine.settings import Settings
from engine.store import get_engine, init_db
from engine.store import results as result_store
from tests.conftest import make_settings
from tests.engine.factories import AS_OF, line, lines_frame, population, write_generic_csv
from tests.engine.realdata import read_online_retail

pytestmark = pytest.mark.spark

FAST = "[clustering]\nk_max = 6\nn_init = 3\ngap_references = 2\n"
NO_CLV = FAST + "[clv]\nenabled = false\n"
BACKENDS = ["pandas", "spark"]


def write_parquet(lines: pd.DataFrame, path: Path) -> Path:
    # Spark reads microsecond timestamps (Parquet's nanosecond ones it refuses).
    lines.to_parquet(path, coerce_timestamps="us", allow_truncated_timestamps=True)
    return path


def run_on(backend: str, lines: pd.DataFrame, settings: Settings, tmp_path: Path,
           spark: Any, **window: Any) -> RunResult:
    """The pipeline's `segment` on one backend."""
    if backend == "pandas":
        return segment(lines, None, settings, **window)
    from engine.spark.lines import open_lines
    from engine.spark.read import read_parquet

    path = write_parquet(lines, tmp_path / "lines.parquet")
    work = open_lines(spark, read_parquet(spark, str(path)), as_of=window.get("as_of"),
                      since=window.get("since"), until=window.get("until"),
                      non_product_codes=list(settings.ingest.non_product_codes))
    return segment_lines(work, None, settings, since=window.get("since"),
                         until=window.get("until"))


def assert_same_results(pandas_run: RunResult, spark_run: RunResult) -> None:
    assert spark_run.as_of == pandas_run.as_of
    assert spark_run.n_lines == pandas_run.n_lines
    assert spark_run.k == pandas_run.k
    pd.testing.assert_frame_equal(spark_run.segments, pandas_run.segments)
    pd.testing.assert_frame_equal(spark_run.profiles, pandas_run.profiles)
    assert pandas_run.rules is not None and spark_run.rules is not None
    pd.testing.assert_frame_equal(spark_run.rules, pandas_run.rules)
    assert pandas_run.recommendations is not None and spark_run.recommendations is not None
    assert "recommendations" not in spark_run.diagnostics["skipped"]
    pd.testing.assert_frame_equal(spark_run.recommendations, pandas_run.recommendations)
    assert pandas_run.sales is not None and spark_run.sales is not None
    assert spark_run.sales.totals == pytest.approx(pandas_run.sales.totals, rel=1e-12)
    assert spark_run.sales.non_product_codes == pandas_run.sales.non_product_codes
    for name in ("months", "products", "groups"):
        # Sums of the same amounts added in another order: equal to the last bits or so.
        pd.testing.assert_frame_equal(getattr(spark_run.sales, name),
                                      getattr(pandas_run.sales, name), rtol=1e-12)
    if pandas_run.clv is not None and pandas_run.clv.customers is not None:
        assert spark_run.clv is not None and spark_run.clv.customers is not None
        ours, theirs = spark_run.clv.customers, pandas_run.clv.customers
        # The models' inputs equal; their outputs come from an optimiser, which a different
        # summation order of the same purchase values (Spark's sums against pandas') moves in
        # the fifth digit (seen: a population's mean order value 198.3121 against 198.3053).
        inputs = ["customer_id", "frequency", "recency", "T"]
        pd.testing.assert_frame_equal(ours[inputs], theirs[inputs], rtol=1e-9)
        pd.testing.assert_frame_equal(ours, theirs, rtol=1e-3)


@pytest.fixture
def both(tmp_path: Path, spark: Any):  # type: ignore[no-untyped-def]
    def run(lines: pd.DataFrame, settings: Settings, **window: Any) -> tuple[RunResult, ...]:
        return tuple(run_on(backend, lines, settings, tmp_path, spark, **window)
                     for backend in BACKENDS)
    return run


def test_population_same_on_both_backends(both, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, "sqlite://", FAST)
    lines = population(seed=3)
    pandas_run, spark_run = both(lines, settings, as_of=AS_OF)
    assert len(pandas_run.rules) > 0  # the population's fixed product pairs give rules
    assert pandas_run.rules["consequents"].map(len).max() >= 1
    assert_same_results(pandas_run, spark_run)
    recommendations = pandas_run.recommendations
    # top_n each, or every product the customer never bought nor returned (12 products here).
    products = set(lines.loc[~lines["is_return"], "stock_code"])
    owned = lines.groupby("customer_id")["stock_code"].agg(set)
    expected = owned.map(lambda mine: min(10, len(products - mine)))
    counts = recommendations.groupby("customer_id").size()
    assert counts.to_dict() == expected[expected > 0].to_dict()
    reasons = set(recommendations["reason"].str.split(" ").str[0])
    assert counts.max() == 10 and "often" in reasons and reasons <= {"often", "popular"}


def test_calendar_days_at_midnight_and_windows(both, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Recency, tenure and the growth windows count calendar (UTC) days: a purchase at 23:59:59
    and one at 00:00:00 the next day are a day apart, however few seconds separate them; the
    window's bounds are whole days on both backends."""
    rows = []
    for number in range(40):
        customer = f"C{number:02d}"
        rows += [line(customer, f"{number}01", "2011-03-01 00:00:00", 10.0 + number),
                 line(customer, f"{number}02", f"2011-09-{1 + number % 28:02d} 23:59:59",
                      5.0 + number),
                 line(customer, f"{number}03", "2011-10-03 00:00:00", 3.0 + number % 7,
                      stock_code="P2"),
                 line(customer, f"{number}04", "2011-10-02 23:59:59.999", 2.0, stock_code="P3")]
        if number % 3 == 0:
            rows.append(line(customer, f"C{number}05", "2011-10-04 12:00:00", -4.0))
        if number % 5 == 0:  # a line on the window's last day and one just after it
            rows += [line(customer, f"{number}06", "2011-11-30 23:59:59", 7.0, stock_code="P2"),
                     line(customer, f"{number}07", "2011-12-01 00:00:00", 9.0)]
    lines = lines_frame(rows)
    settings = make_settings(tmp_path, "sqlite://", NO_CLV + "[classes]\ngrowth_days = 61\n"
                             "[baskets]\nmin_baskets = 5\nmin_support = 0.05\n")
    for window in ({"as_of": date(2011, 12, 1)}, {"until": date(2011, 11, 30)},
                   {"since": date(2011, 9, 2), "until": date(2011, 11, 30),
                    "as_of": date(2011, 12, 3)}):
        pandas_run, spark_run = both(lines, settings, **window)
        assert_same_results(pandas_run, spark_run)
    # 2011-11-30 23:59:59 to as_of 2011-12-03: three calendar days (timedelta days: two)
    assert 3 in set(spark_run.segments["recency_days"])


def hand_made_shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(lines, assignments, rules) with what the recommendations' inputs must get right: a
    description tie (alphabetical wins), a product without a description, returns (a product
    only ever returned is no product; a returned one is never recommended), a non-product code,
    a basket above max_basket_size, a purchase without a customer, a customer not assigned, and
    purchases inside and outside the neighbour and trending windows."""
    rows = []
    named = {"P1": ["Red mug", "red mug", "Red mug", "red mug"], "P3": ["Tea towel"]}
    for number, (customer, day, codes) in enumerate([
        ("A", "2011-11-20", ["P1", "P2"]), ("A", "2011-06-01", ["P3", "P4", "POST"]),
        ("B", "2011-11-25", ["P1", "P2", "P5"]), ("B", "2011-09-01", ["P1", "P3"]),
        ("C", "2011-12-02", ["P2", "P5"]), ("C", "2011-11-30", ["P6"]),
        ("D", "2011-08-15", ["P4", "P6", "P7"]), ("D", "2011-11-29", ["P1", "P7"]),
        ("E", "2011-12-01", ["P1", "P2", "P3", "P4", "P5", "P6"]),  # above max_basket_size
        ("E", "2011-10-10", ["P3", "P8"]), ("F", "2011-12-05", ["P8", "P2"]),
        (None, "2011-11-28", ["P5", "P8"]), ("G", "2011-11-27", ["P6", "P8"]),
        ("F", "2011-12-06", ["P7"]),
    ]):
        for code in codes:
            rows.append(line(customer, f"{number:03d}", f"{day} 10:00", 5.0, stock_code=code))
    rows += [line("A", "C900", "2011-12-01 09:00", -5.0, stock_code="P6"),  # A returned P6
             line("C", "C901", "2011-12-01 09:00", -5.0, stock_code="P9")]  # never bought
    lines = lines_frame(rows)
    p1 = np.flatnonzero(lines["stock_code"] == "P1")
    lines.loc[p1[:4], "description"] = named["P1"]
    lines.loc[lines["stock_code"] == "P2", "description"] = None
    lines.loc[lines["invoice"] == "C900", "description"] = "Returned name"
    assignments = pd.DataFrame({"customer_id": list("ABCDEF"), "cluster": [0, 0, 0, 1, 1, 1]})
    rules = pd.DataFrame({"cluster": pd.Series([None, 1], dtype=object),
                          "antecedents": [frozenset({"P1"}), frozenset({"P3", "P8"})],
                          "consequents": [frozenset({"P5"}), frozenset({"P7"})],
                          "confidence": [0.6, 0.9], "lift": [1.5, 3.0]})
    return lines, assignments, rules


def test_recommendations_same_on_both_backends(tmp_path: Path, spark: Any) -> None:
    """engine.recommend.recommend and its Spark form give the same inputs (every matrix and
    array equal, to the bit) and so the same recommendations, on a hand-made shop."""
    from dataclasses import fields

    from scipy import sparse

    from engine.baskets import CodedLines
    from engine.recommend import people_of, recommend, recommend_inputs
    from engine.settings import RecommendSettings
    from engine.spark import recommend as spark_recommend
    from engine.spark.read import read_parquet

    lines, assignments, rules = hand_made_shop()
    # Every part on (as shipped co-occurrence, customers like you and trending are off).
    settings = RecommendSettings(top_n=3, max_basket_size=5, max_neighbours=2, neighbours=2,
                                 neighbour_days=10, trending_days=7, cooccurrence_weight=0.3,
                                 neighbour_weight=0.5, trending_weight=0.2)
    as_of, codes = date(2011, 12, 8), ["POST"]
    history = read_parquet(spark, str(write_parquet(lines, tmp_path / "lines.parquet")))
    customers = people_of(assignments)["customer_id"].to_numpy(dtype=object)
    pandas_inputs = recommend_inputs(lines, CodedLines.of(lines, codes), customers, settings,
                                     as_of)
    spark_inputs = spark_recommend.recommend_inputs(spark, history, customers, settings=settings,
                                                    non_product_codes=codes, as_of=as_of)
    assert spark_inputs is not None

    def assert_same(left: Any, right: Any, name: str) -> None:
        if sparse.issparse(left):
            assert sparse.issparse(right) and left.shape == right.shape, name
            for part in ("indptr", "indices", "data"):
                np.testing.assert_array_equal(getattr(right, part), getattr(left, part), name)
        elif isinstance(left, np.ndarray):
            np.testing.assert_array_equal(right, left, name)
        else:
            for field in fields(left):
                assert_same(getattr(left, field.name), getattr(right, field.name), field.name)

    assert_same(pandas_inputs, spark_inputs, "inputs")
    described = dict(zip(pandas_inputs.products, pandas_inputs.descriptions, strict=True))
    assert described["P1"] == "Red mug" and described["P2"] == "P2"
    assert "P9" not in described and "POST" not in described
    assert pandas_inputs.neighbours.getnnz(axis=1).max() == 2  # the cut to max_neighbours
    assert pandas_inputs.time_counts is not None
    assert pandas_inputs.time_counts.trending.max() == 1.0
    assert pandas_inputs.ease_training is not None
    assert 0 < pandas_inputs.ease_training.data.min() < pandas_inputs.ease_training.data.max() <= 1

    pandas_recs = recommend(lines, assignments, rules, settings=settings,
                            non_product_codes=codes, as_of=as_of)
    spark_recs = spark_recommend.recommendations(spark, history, assignments, rules,
                                                 settings=settings, non_product_codes=codes,
                                                 as_of=as_of)
    pd.testing.assert_frame_equal(spark_recs, pandas_recs)
    assert len(pandas_recs) > 0 and pandas_recs["reason"].nunique() > 2
    assert not ((pandas_recs["customer_id"] == "A") & (pandas_recs["stock_code"] == "P6")).any()
    shipped = RecommendSettings(top_n=3, max_basket_size=5)  # EASE, rules, popularity
    pd.testing.assert_frame_equal(
        spark_recommend.recommendations(spark, history, assignments, rules, settings=shipped,
                                        non_product_codes=codes, as_of=as_of),
        recommend(lines, assignments, rules, settings=shipped, non_product_codes=codes,
                  as_of=as_of))


def test_window_without_lines_fails_on_both(tmp_path: Path, spark: Any) -> None:
    from engine.pipeline import RunError

    settings = make_settings(tmp_path, "sqlite://", NO_CLV)
    for backend in BACKENDS:
        with pytest.raises(RunError, match="no transaction lines in the window 2030-01-01"):
            run_on(backend, population(seed=1), settings, tmp_path, spark,
                   since=date(2030, 1, 1))


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_same_on_both_backends(both, tmp_path: Path, real_data: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, "sqlite://", NO_CLV)
    pandas_run, spark_run = both(read_online_retail(real_data), settings)
    assert pandas_run.n_customers > 4000 and len(pandas_run.rules) > 50
    assert_same_results(pandas_run, spark_run)


@pytest.mark.postgres
def test_store_over_jdbc_publishes_the_same_run(tmp_path: Path, postgres_url: str,
                                                spark: Any) -> None:
    settings = make_settings(tmp_path, postgres_url, FAST + "[spark]\njdbc_partitions = 3\n")
    db = get_engine(settings.database_url)
    init_db(engine=db)
    ingest_file(db, settings, write_generic_csv(population(seed=5), tmp_path / "lines.csv"))
    runs = {backend: execute_run(db, settings, backend=backend) for backend in BACKENDS}
    for read in (result_store.read_segments, result_store.read_rules, result_store.read_profiles,
                 result_store.read_recommendations):
        pandas_rows, spark_rows = (read(engine=db, run_id=runs[name]) for name in BACKENDS)
        assert len(pandas_rows) > 0
        pd.testing.assert_frame_equal(spark_rows, pandas_rows)
    pandas_sales, spark_sales = (result_store.read_sales(engine=db, run_id=runs[name])
                                 for name in BACKENDS)
    assert pandas_sales is not None and spark_sales is not None
    assert spark_sales.totals == pytest.approx(pandas_sales.totals, rel=1e-12)
    for name in ("months", "products", "groups"):
        assert len(getattr(pandas_sales, name)) > 0
        pd.testing.assert_frame_equal(getattr(spark_sales, name), getattr(pandas_sales, name),
                                      rtol=1e-12)
    assert np.isfinite(result_store.read_segments(engine=db, run_id=runs["spark"])
                       ["monetary"]).all()
