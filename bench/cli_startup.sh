#!/bin/bash
# CLI start-up (docs/benchmarks.md, "Command-line start-up"): 3 runs each of `segmint --help` and
# `segmint runs` under /usr/bin/time -v, then 3 under python -X importtime.
#   bench/cli_startup.sh LABEL SRC_DIR CONFIG   (CONFIG: an init-db'd, empty SQLite database)
# SRC_DIR is a checkout of the tree to measure: `python -m segmint` imports from the current
# directory first, so one venv measures any commit.
set -eu
# the venv's python by its own path (realpath would resolve it to the base interpreter)
LABEL=$1; CONFIG=$(realpath "$3"); PY=${PYTHON:-$PWD/.venv/bin/python}; OUT=$(mktemp -d)
cd "$2"
for cmd in "--help" "runs"; do
  for i in 1 2 3; do
    /usr/bin/time -v $PY -m segmint --config $CONFIG $cmd >/dev/null 2>$OUT/time.txt
    w=$(grep "Elapsed (wall" $OUT/time.txt | awk '{print $NF}')
    u=$(grep "User time" $OUT/time.txt | awk '{print $NF}')
    s=$(grep "System time" $OUT/time.txt | awk '{print $NF}')
    r=$(grep "Maximum resident" $OUT/time.txt | awk '{print $NF}')
    echo "$LABEL $cmd run$i wall=$w user=$u sys=$s maxrss_kb=$r"
  done
  for i in 1 2 3; do
    $PY -X importtime -m segmint --config $CONFIG $cmd 2>$OUT/imp.txt >/dev/null
    n=$(grep -c "import time:" $OUT/imp.txt)
    tot=$(grep "import time:" $OUT/imp.txt | awk -F'|' '$3 !~ /^  / {s+=$2} END{print s}')
    echo "$LABEL $cmd importtime run$i: modules=$n sum-of-top-level-cumulative-us=$tot"
  done
  cp "$OUT/imp.txt" "$OUT/importtime-$LABEL-${cmd#--}.txt"
done
echo "import-time reports: $OUT"
