"""What a `segmint serve` worker sets up before building its app (dashboard.serve)."""

from __future__ import annotations

import subprocess
import sys


def test_a_worker_allocates_arrow_memory_from_malloc() -> None:
    """dashboard.serve.bound_memory, as a worker runs it (in a child process: it changes the
    process's allocator): Arrow's tables come from malloc, not from Arrow's own pool, which
    kept a window's freed pages resident in the worker, and Arrow still computes."""
    code = ("import pyarrow as pa; from dashboard.serve import bound_memory; bound_memory(); "
            "print(pa.default_memory_pool().backend_name, pa.array(range(1000)).sum().as_py())")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert found == ["system", "499500"]
