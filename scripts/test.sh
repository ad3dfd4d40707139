#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then lint, types, tests.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

step() { printf '\n== %s\n' "$*"; }

step "python environment (.venv)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q -e '.[dev,spark]'

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

# apt_install PACKAGE...: Debian packages the tests need, installed when a command is missing.
apt_install() {
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" </dev/null
}

step "Chromium and ChromeDriver for the browser tests"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install chromium chromium-driver
fi
chromium --version

step "redis-server for the login-throttling tests (they start their own on a free port)"
if ! command -v redis-server >/dev/null; then
  apt_install redis-server
fi
redis-server --version

step "Java 17 and the PostgreSQL JDBC driver for the Spark backend tests"
if ! command -v java >/dev/null || [ ! -f /usr/share/java/postgresql.jar ]; then
  apt_install openjdk-17-jre-headless libpostgresql-jdbc-java
fi
java -version 2>&1 | head -n 1

step "ruff"
.venv/bin/ruff check .

step "mypy (engine, notifications, dashboard, jobs)"
.venv/bin/mypy

step "CLV models compiled once (pytensor's cache in var/cache/pytensor, shared by every test)"
.venv/bin/python tests/compile_clv.py

step "pytest"
status=0
.venv/bin/python -m pytest -n "${SEGMINT_TEST_WORKERS:-2}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest selected no tests (exit 5): treated as success"
  status=0
fi
exit "$status"
