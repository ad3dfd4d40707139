"""Ingest: files into the store, all or nothing.

- readers: CSV, CSV.gz, XLSX, Parquet into text frames with physical line numbers;
- presets: column layouts (online-retail, online-retail-ii, generic) and choosing one;
- normalise: per-row checks and normalisation of a transactions file, vectorised;
- transactions: line hashes, duplicates and returns: the staged transactions file;
- customers: the customers file (phones to E.164, consent, time zones);
- load: ingest_file, which reads, stages and writes both files in one transaction.
"""

from engine.ingest.load import IngestSummary, ingest_file
from engine.ingest.presets import PRESETS
from engine.ingest.readers import IngestError

__all__ = ["IngestError", "IngestSummary", "PRESETS", "ingest_file"]
