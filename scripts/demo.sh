#!/usr/bin/env bash
# The main job on a fresh machine: install Segmint, then `segmint demo` (demo data in
# var/demo-data, SQLite database var/segmint.db, one run, a demo login, then the scheduler and
# the dashboard at http://127.0.0.1:8050 as two processes; Ctrl-C stops both).
# Usage: bash scripts/demo.sh [segmint demo options, e.g. --port 8060 --interval 30]
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q -e .

# The demo is the embedded SQLite setup of config.toml; a PostgreSQL URL exported in this shell
# would otherwise take precedence over it.
unset SEGMINT_DATABASE_URL
exec .venv/bin/segmint --config config.toml demo "$@"
