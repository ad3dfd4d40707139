"""Segmint's command-line entry point (the packages engine, jobs, dashboard, notifications do the work)."""
