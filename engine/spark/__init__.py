"""The Spark backend (SPEC.md, "Scale-out"): the work of a run that grows with the lines, in
Spark DataFrames with Spark's own functions (no Python UDF, no line reaches the driver).

- session.py: the one SparkSession of the process, built from [spark];
- read.py: the lines, from the PostgreSQL store over JDBC in parallel partitions or from a
  Parquet dataset, checked and typed as the engine's lines frame;
- features.py: per-customer figures (RFM, growth windows, purchase days);
- baskets.py: the baskets of each cluster and their frequent item sets (MLlib FPGrowth);
- lines.py: `SparkLines`, the engine.backend.LineWork a run uses.

Only this package imports pyspark, and only a Spark run imports this package.
"""
