"""The lines as a Spark DataFrame with the engine's line columns and types: from the PostgreSQL
store over JDBC (parallel reads split on the line id) or from a Parquet dataset.

Columns: invoice, stock_code, customer_id (text), amount (double), ts (timestamp, UTC),
is_return (boolean); description (text, the recommendations' product names: null when the
source has none, and then a product is named by its stock code). Windows follow engine.dates'
rule, as literals in UTC (engine.spark.features.moment).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from engine.dates import day_start
from engine.errors import SegmintError, one_line
from engine.rfm import REQUIRED_LINE_COLUMNS
from engine.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TEXT_COLUMNS = ("invoice", "stock_code", "customer_id")


class SparkInputError(SegmintError):
    """The Spark backend cannot read the lines: the message names the setting or the column."""


def typed_lines(lines: DataFrame, source: str) -> DataFrame:
    """The engine's line columns, typed; a source without one of them is refused (one without
    a description or a quantity gets a null one)."""
    from pyspark.sql import functions as F

    missing = [name for name in REQUIRED_LINE_COLUMNS if name not in lines.columns]
    if missing:
        raise SparkInputError(f"{source}: required column(s) {', '.join(missing)} missing")
    columns = [F.col(name).cast("string").alias(name) for name in TEXT_COLUMNS]
    columns += [F.col("amount").cast("double").alias("amount"),
                F.col("ts").cast("timestamp").alias("ts"),
                F.col("is_return").cast("boolean").alias("is_return"),
                (F.col("description") if "description" in lines.columns else F.lit(None))
                .cast("string").alias("description"),
                (F.col("quantity") if "quantity" in lines.columns else F.lit(None))
                .cast("double").alias("quantity")]
    return lines.select(*columns)


def read_parquet(spark: SparkSession, path: str) -> DataFrame:
    """A Parquet dataset (a file or a folder of them) every executor can read."""
    from pyspark.errors import PySparkException

    source = f"spark.parquet_path {path}"
    try:
        lines = spark.read.parquet(path)
    except PySparkException as exc:
        raise SparkInputError(f"{source}: {one_line(exc)}") from None
    return typed_lines(lines, source)


def jdbc_options(engine: Engine) -> tuple[str, dict[str, str]]:
    """(JDBC URL, connection properties) of a SQLAlchemy PostgreSQL engine; a search_path given
    in the URL's options (the tests' private schemas) goes along."""
    url = engine.url
    jdbc = f"jdbc:postgresql://{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
    properties = {"driver": "org.postgresql.Driver", "user": url.username or ""}
    if url.password:
        properties["password"] = str(url.password)
    options = url.query.get("options")
    if options:
        properties["options"] = options if isinstance(options, str) else options[0]
    return jdbc, properties


def require_postgres(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise SparkInputError(
            f'spark.source = "store" reads the store over JDBC, which needs PostgreSQL; this '
            f'store is {engine.dialect.name}: use a PostgreSQL database.url, or spark.source = '
            f'"parquet" with spark.parquet_path')


def read_store(spark: SparkSession, engine: Engine, settings: SparkSettings,
               end: date | None) -> DataFrame:
    """The store's lines before ``end`` (all when None), read in settings.jdbc_partitions
    parallel ranges of the line id."""
    require_postgres(engine)
    where = "" if end is None else f" WHERE ts < '{day_start(end).isoformat()}'"
    try:
        with engine.connect() as connection:
            low, high = connection.execute(
                text(f"SELECT min(id), max(id) FROM transaction_line{where}")).one()
    except SQLAlchemyError as exc:
        raise SparkInputError(f"database: {one_line(exc)}") from None
    columns = ", ".join((*TEXT_COLUMNS, "amount", "ts", "is_return", "description",
                         "quantity"))
    query = f"(SELECT id, {columns} FROM transaction_line{where}) AS lines"
    jdbc, properties = jdbc_options(engine)
    lines = spark.read.jdbc(jdbc, query, column="id", lowerBound=int(low or 0),
                            upperBound=int(high or 0) + 1,
                            numPartitions=settings.jdbc_partitions, properties=properties)
    return typed_lines(lines, "the store")
