"""Compile the CLV models once before the tests: `python tests/compile_clv.py` (scripts/test.sh).

pytensor keeps the compiled code in var/cache/pytensor (tests/conftest.py's PYTENSOR_CACHE), so
after this no test pays the first compilation: not a test in its own time, nor a scheduler or
CLI child process that a test waits for with a deadline (on a fresh clone and a loaded machine
that compilation took minutes). With the cache already full it takes a few seconds.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CACHE = REPO / "var" / "cache" / "pytensor"
os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={CACHE}")


def main() -> None:
    import numpy as np
    import pandas as pd

    from engine.clv import fit_models

    rng = np.random.default_rng(0)
    n = 300
    frequency = rng.poisson(1.5, n)
    age = rng.uniform(10.0, 52.0, n)
    summary = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "frequency": frequency,
        "recency": np.where(frequency > 0, age * rng.uniform(0.1, 1.0, n), 0.0),
        "T": age,
        "monetary_value": np.where(frequency > 0, rng.gamma(4.0, 10.0, n), 0.0),
    })
    started = time.perf_counter()
    fit_models(summary, min_repeat_customers=1, what="the warm-up fit")
    print(f"CLV models ready in {time.perf_counter() - started:.1f} s "
          f"(pytensor cache {os.environ['PYTENSOR_FLAGS']})")


if __name__ == "__main__":
    main()
