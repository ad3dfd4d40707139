"""pandas against Spark local[2] on the same lines: `python -m bench.spark --lines 1000000`.

The lines are a sample of the 10-million-line synthetic store's source file (every invoice whose
number is in the sample, so each customer keeps a share of their history; `--source`), or the
whole file for `--lines 0`, written once as Parquet; `--repeat N` repeats that sample N times
over later dates (the same customers and products, N times the lines). Each backend then runs
one segmentation in a fresh child process (bench/measure.py), timed from the Parquet file to
the RunResult:

- pandas: read the Parquet file into the lines frame, `engine.pipeline.segment`;
- spark: start the SparkSession (local[2], [spark] defaults), `SparkLines` on the Parquet file,
  `engine.pipeline.segment_lines` (the session's start is reported on its own as well).

Both run with [clv] enabled = false (the CLV fit is the same driver code on both backends, and
its time would hide the difference); both make the recommendations (on Spark their inputs are
aggregated in Spark, the ranking is the driver's pandas code). Peak memory: the driver (the
Python process's own max RSS) and the whole process tree (the Python process plus, on Spark,
the JVM child that holds the driver and the executors in local mode), sampled from /proc. CPU
seconds: the Python process's own (time.process_time) and, on Spark, the JVM's (its utime and
stime from /proc, read before the session stops), which a shared machine's load does not
inflate as it does the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.measure import StageContext, max_rss_mib, run_stage
from bench.run import machine

SOURCE = Path("/work/bench10m/data/transactions.csv")
CONFIG = "[clv]\nenabled = false\n"


def write_sample(source: Path, lines: int, target: Path) -> int:
    """The source CSV's lines of every n-th invoice (all when lines = 0) as a Parquet lines
    file (microsecond timestamps, which Spark reads); returns the number of lines."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(column_types={
        "invoice": pa.string(), "stock_code": pa.string(), "customer_id": pa.string(),
        "quantity": pa.float64(), "unit_price": pa.float64(), "timestamp": pa.timestamp("us")}))
    if lines:
        step = max(1, round(table.num_rows / lines))
        digits = pc.cast(pc.replace_substring(table["invoice"], "C", ""), pa.int64())
        table = table.filter(pa.array(digits.to_numpy() % step == 0))
    quantity = table["quantity"]
    lines_table = pa.table({
        "invoice": table["invoice"], "stock_code": table["stock_code"],
        "description": table["description"], "quantity": quantity,
        "amount": pc.multiply(quantity, table["unit_price"]),
        "ts": table["timestamp"], "customer_id": table["customer_id"],
        "is_return": pc.or_(pc.starts_with(table["invoice"], "C"), pc.less(quantity, 0)),
    })
    pq.write_table(lines_table, target)
    return lines_table.num_rows


def write_repeated(sample: Path, times: int, target: Path) -> int:
    """The sample's lines `times` times, copy k moved k x (its span + 1 day) later with its
    invoices suffixed "-k": the same customers and products with `times` times the lines (how
    the driver's memory follows the lines, not the customers). Returns the number of lines."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(sample)
    span = pc.subtract(pc.max(table["ts"]), pc.min(table["ts"])).as_py()
    step = span + timedelta(days=1)
    copies = [table]
    for k in range(1, times):
        moved = pc.add(table["ts"], pa.scalar(step * k, type=pa.duration("us")))
        copies.append(table.set_column(table.schema.get_field_index("ts"), "ts", moved)
                      .set_column(table.schema.get_field_index("invoice"), "invoice",
                                  pc.binary_join_element_wise(table["invoice"], f"-{k}", "")))
    repeated = pa.concat_tables(copies)
    pq.write_table(repeated, target)
    return repeated.num_rows


def _settings(ctx: StageContext) -> Any:
    from engine.settings import load_settings

    config = ctx.workdir / "config.toml"
    config.write_text(CONFIG)
    return load_settings(config, environ={})


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's live descendants: the JVM on Spark."""
    own = str(os.getpid())
    total, pending = 0, [own]
    while pending:
        pid = pending.pop()
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending.extend((task / "children").read_text().split())
            if pid != own:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _result_notes(ctx: StageContext, result: Any, cpu: float) -> None:
    recommendations = result.recommendations
    ctx.notes.update({"n_lines": result.n_lines, "n_customers": result.n_customers,
                      "k": result.k, "rules": 0 if result.rules is None else len(result.rules),
                      "recommendations": 0 if recommendations is None else len(recommendations),
                      "timings": result.diagnostics["timings"],
                      "skipped": result.diagnostics["skipped"],
                      "driver_cpu_seconds": round(cpu, 1),
                      "driver_rss_mib": round(max_rss_mib(), 1)})


def pandas_stage(ctx: StageContext) -> None:
    import pandas as pd

    from engine.pipeline import segment

    settings = _settings(ctx)
    cpu = time.process_time()
    with ctx.timed():
        lines = pd.read_parquet(ctx.data)
        lines["ts"] = lines["ts"].astype("datetime64[ns]")
        result = segment(lines, None, settings)
    _result_notes(ctx, result, time.process_time() - cpu)


def spark_stage(ctx: StageContext) -> None:
    from engine.pipeline import segment_lines
    from engine.spark.lines import open_lines
    from engine.spark.read import read_parquet
    from engine.spark.session import spark_session

    settings = _settings(ctx)
    cpu = time.process_time()
    with ctx.timed():
        started = time.perf_counter()
        spark = spark_session(settings.spark)
        ctx.notes["session_seconds"] = round(time.perf_counter() - started, 2)
        work = open_lines(spark, read_parquet(spark, str(ctx.data)), as_of=None, since=None,
                          until=None, non_product_codes=list(settings.ingest.non_product_codes))
        result = segment_lines(work, None, settings)
    _result_notes(ctx, result, time.process_time() - cpu)
    ctx.notes["jvm_cpu_seconds"] = round(children_cpu_seconds(), 1)
    spark.stop()


STAGES = {"pandas": pandas_stage, "spark": spark_stage}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000,
                        help="about this many lines sampled from --source (0: all of it)")
    parser.add_argument("--source", type=Path, default=SOURCE,
                        help="a transactions CSV as `segmint generate-demo-data` writes it")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench-spark"))
    parser.add_argument("--backends", nargs="+", default=["pandas", "spark"],
                        choices=sorted(STAGES))
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="the sample this many times over later dates (same customers)")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
          f"Python {info['python']}, load average {info['load_average']}", flush=True)
    data = workdir / f"lines-{args.lines}.parquet"
    if not data.exists():
        started = time.perf_counter()
        count = write_sample(args.source, args.lines, data)
        print(f"{count:,} lines written to {data} in {time.perf_counter() - started:.0f}s",
              flush=True)
    if args.repeat > 1:
        repeated = workdir / f"lines-{args.lines}x{args.repeat}.parquet"
        if not repeated.exists():
            count = write_repeated(data, args.repeat, repeated)
            print(f"{count:,} lines ({args.repeat} x the sample) written to {repeated}",
                  flush=True)
        data = repeated
    figures: dict[str, Any] = {"machine": info, "data": str(data)}
    for backend in args.backends:
        result = run_stage("spark", backend, data=data, workdir=workdir, timeout=7200)
        notes = result.notes
        timings = notes["timings"]
        figures[backend] = {"seconds": round(result.seconds, 2),
                            "tree_peak_mib": round(result.max_rss_mib, 1), **notes}
        session = f", session start {notes['session_seconds']}s" if backend == "spark" else ""
        jvm = f", JVM {notes['jvm_cpu_seconds']} CPU s" if backend == "spark" else ""
        print(f"{backend}: {notes['n_lines']:,} lines, {notes['n_customers']:,} customers, "
              f"k = {notes['k']}, {notes['rules']} rules, {notes['recommendations']:,} "
              f"recommendations (skipped: {notes['skipped'] or 'none'}): {result.seconds:.1f}s"
              f"{session}; driver {notes['driver_cpu_seconds']} CPU s{jvm}; driver peak "
              f"{notes['driver_rss_mib']:.0f} MiB, process tree peak "
              f"{result.max_rss_mib:.0f} MiB; stages {timings}", flush=True)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average after: {figures['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
