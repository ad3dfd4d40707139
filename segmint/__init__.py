"""The `segmint` console script; the packages engine, jobs, dashboard, notifications work."""
