"""The process's one SparkSession, built from the [spark] settings, with one-line errors for
what stops it: pyspark not installed, Java missing or broken, a cluster master out of reach."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from engine.errors import SegmintError, one_line
from engine.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'segmint[spark]'"
JAVA_HINT = "Spark needs Java 17 or 21 (apt-get install openjdk-17-jre-headless)"
CONNECT_SECONDS = 5.0


class SparkUnavailable(SegmintError):
    """The Spark backend cannot start: the message names the setting or what to install."""


def require_pyspark() -> None:
    """pyspark must be importable (it is the `spark` extra); this module never imports it at
    load time, so the check can come first."""
    import importlib

    try:
        importlib.import_module("pyspark.sql")
    except ImportError:
        raise SparkUnavailable(f"engine.backend = spark needs pyspark: {INSTALL_HINT}") from None


def check_master(master: str) -> None:
    """A standalone master (spark://host:port[,host:port]) must accept a connection: Spark
    itself would retry for a minute and then leave the run waiting for executors."""
    if not master.startswith("spark://"):
        return
    reasons = []
    for address in master.removeprefix("spark://").split(","):
        parts = urlsplit(f"//{address}")
        try:
            with socket.create_connection((parts.hostname or "", parts.port or 7077),
                                          timeout=CONNECT_SECONDS):
                return
        except (OSError, ValueError) as exc:
            reasons.append(f"{address}: {one_line(exc)}")
    raise SparkUnavailable(f"spark.master {master}: unreachable ({'; '.join(reasons)})")


def spark_session(settings: SparkSettings, *, jars: tuple[str, ...] = ()) -> SparkSession:
    """The SparkSession of this process (made on first use, then reused; a test session's
    fixture and the runs in it share it). UTC everywhere: the session's time zone and the JVM's,
    so a timestamp's calendar day is the same as on the pandas backend."""
    require_pyspark()
    from pyspark.sql import SparkSession

    check_master(settings.master)
    utc = "-Duser.timezone=UTC"
    builder = (SparkSession.builder.master(settings.master).appName(settings.app_name)
               .config("spark.driver.memory", settings.driver_memory)
               .config("spark.executor.memory", settings.executor_memory)
               .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.extraJavaOptions", utc)
               .config("spark.executor.extraJavaOptions", utc)
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j / pyspark raise several kinds: all mean "no Spark"
        text = one_line(exc)
        if "JAVA_GATEWAY_EXITED" in text or "Java gateway" in text:
            java_home = os.environ.get("JAVA_HOME")
            where = f"JAVA_HOME={java_home}" if java_home else "java on PATH"
            raise SparkUnavailable(f"spark: Java did not start ({where}): {JAVA_HINT}") from None
        raise SparkUnavailable(f"spark.master {settings.master}: Spark did not start: "
                               f"{text}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session
