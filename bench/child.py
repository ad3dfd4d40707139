"""One measured stage: `python -m bench.child SIDE STAGE --data P --workdir W --result R`.

Runs in a fresh process (see bench/measure.py) and writes {"seconds", "max_rss_mib", "notes"}.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from bench import notebook_baseline, segmint_side, spark
from bench.measure import StageContext, max_rss_mib

SIDES = {
    "notebook": notebook_baseline.STAGES,
    "segmint": segmint_side.STAGES,
    "pandas": segmint_side.PANDAS_STAGES,
    "spark": spark.STAGES,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("side", choices=sorted(SIDES))
    parser.add_argument("stage")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--options", default="{}", help="JSON object of stage options")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    stage = SIDES[args.side].get(args.stage)
    if stage is None:
        parser.error(f"side {args.side} has no stage {args.stage!r}")
    ctx = StageContext(data=args.data.resolve(), workdir=args.workdir.resolve(),
                       options=json.loads(args.options))
    stage(ctx)
    args.result.write_text(json.dumps({"seconds": ctx.seconds, "max_rss_mib": max_rss_mib(),
                                       "notes": ctx.notes}))


if __name__ == "__main__":
    main()
