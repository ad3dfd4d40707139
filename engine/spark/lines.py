"""`SparkLines`: a run's lines in Spark, the engine.backend.LineWork of the Spark backend.

The history's customer lines (engine.spark.features.customer_lines) are cached once: RFM, the
growth windows and the purchase days all read them; the window's purchase lines feed the
baskets; the history's lines feed the recommendations' inputs (engine/spark/recommend.py). Lines
read from the store over JDBC are cached as read too (a Parquet dataset is read again instead:
a columnar re-read costs less than holding every line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pandas as pd
from py4j.protocol import Py4JJavaError
from pyspark import StorageLevel
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlalchemy import Engine

from engine.dates import last_day, window_end
from engine.errors import SegmintError, one_line
from engine.sales_figures import SalesFigures
from engine.settings import BasketSettings, ClvSettings, RecommendSettings, Settings
from engine.spark import baskets, features, sales
from engine.spark.read import SparkInputError, read_parquet, read_store, require_postgres
from engine.spark.session import spark_session

if TYPE_CHECKING:
    from engine.clv import ClvResult


class SparkRunError(SegmintError):
    """Spark failed while computing a run's tables: the first line of its error."""


@dataclass
class SparkLines:
    """The window [since, until] of ``lines`` (history: every line before its end)."""

    spark: SparkSession
    history: DataFrame
    window: DataFrame
    as_of: date
    n_lines: int
    has_products: bool
    non_product_codes: list[str]
    since: date | None = None
    source_cache: DataFrame | None = None  # the store's lines, read once over JDBC
    _customers: DataFrame | None = field(default=None, repr=False)

    def _customer_history(self) -> DataFrame:
        if self._customers is None:
            self._customers = features.customer_lines(self.history, self.non_product_codes) \
                .persist(StorageLevel.MEMORY_AND_DISK)
        return self._customers

    def rfm_table(self) -> pd.DataFrame:
        lines = self._customer_history()
        if self.since is not None:
            lines = lines.where(F.col("ts") >= features.moment(self.since))
        return features.rfm_table(lines, as_of=self.as_of)

    def sales_figures(self) -> SalesFigures:
        return sales.sales_figures(self.window, self.history,
                                   non_product_codes=self.non_product_codes,
                                   has_products=self.has_products)

    def group_products(self, assignments: pd.DataFrame) -> pd.DataFrame:
        return sales.group_products(self.spark, self.window, assignments,
                                    non_product_codes=self.non_product_codes)

    def growth(self, growth_days: int) -> pd.DataFrame:
        return features.growth_frame(self._customer_history(), as_of=self.as_of,
                                     growth_days=growth_days)

    def clv(self, settings: ClvSettings, groups: pd.DataFrame) -> ClvResult:
        from engine.clv import customer_value

        days = features.purchase_days(self._customer_history())
        return customer_value(pd.DataFrame(), as_of=self.as_of, settings=settings,
                              groups=groups, days=days)

    def release_customer_lines(self) -> None:
        if self._customers is not None:
            self._customers.unpersist()
            self._customers = None

    def rules(self, assignments: pd.DataFrame, settings: BasketSettings) -> pd.DataFrame:
        partitions = max(1, self.spark.sparkContext.defaultParallelism)
        return baskets.mine_rules(self.spark, self.window, assignments, settings=settings,
                                  non_product_codes=self.non_product_codes,
                                  partitions=partitions)

    def recommendations(self, assignments: pd.DataFrame, rules: pd.DataFrame,
                        settings: RecommendSettings) -> pd.DataFrame | None:
        from engine.spark.recommend import recommendations

        return recommendations(self.spark, self.history, assignments, rules, settings=settings,
                               non_product_codes=self.non_product_codes, as_of=self.as_of)

    def release(self) -> None:
        self.release_customer_lines()
        if self.source_cache is not None:
            self.source_cache.unpersist()
            self.source_cache = None


def open_lines(spark: SparkSession, lines: DataFrame, *, as_of: date | None,
               since: date | None, until: date | None,
               non_product_codes: list[str]) -> SparkLines:
    """engine.pipeline.window_lines on a Spark DataFrame of lines: the history before the
    window's end, the window, and as_of (default: the day after the window's last line)."""
    from engine.pipeline import empty_window, history_end

    end = history_end(as_of=as_of, since=since, until=until)
    history = lines if end is None else lines.where(F.col("ts") < features.moment(end))
    window = history if since is None else history.where(F.col("ts") >= features.moment(since))
    summary = window.agg(F.count(F.lit(1)).alias("n"), F.max("ts").alias("last")).collect()[0]
    n_lines = int(summary["n"])
    if n_lines and as_of is None:
        as_of = pd.Timestamp(summary["last"]).date() + timedelta(days=1)
    if not n_lines or as_of is None:
        raise empty_window(since=since, until=until, as_of=as_of)
    has_products = bool(history.where(F.col("stock_code").isNotNull()).limit(1).count())
    return SparkLines(spark=spark, history=history, window=window, as_of=as_of, n_lines=n_lines,
                      has_products=has_products, non_product_codes=non_product_codes,
                      since=since)


def spark_lines(engine: Engine, settings: Settings, *, as_of: date | None, since: date | None,
                until: date | None) -> SparkLines:
    """A run's lines on Spark, from [spark] source: the store (PostgreSQL over JDBC) or
    parquet_path."""
    spark_settings = settings.spark
    store = spark_settings.source == "store"
    if store:
        require_postgres(engine)  # before starting Spark: a SQLite store cannot serve it
    spark = spark_session(spark_settings, jars=(spark_settings.jdbc_jar,) if store else ())
    try:
        cached = None
        if store:
            # Read once: the counts, the customer lines and the baskets all read the lines,
            # and each read would be another pass over the database.
            lines = cached = read_store(spark, engine, spark_settings,
                                        window_end(last_day(until, as_of))) \
                .persist(StorageLevel.MEMORY_AND_DISK)
        else:
            lines = read_parquet(spark, settings.path(spark_settings.parquet_path).as_posix())
        work = open_lines(spark, lines, as_of=as_of, since=since, until=until,
                          non_product_codes=list(settings.ingest.non_product_codes))
        work.source_cache = cached
        return work
    except (PySparkException, Py4JJavaError) as exc:
        raise SparkInputError(f"spark: {one_line(exc)}") from None
