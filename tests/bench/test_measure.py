"""bench.measure.TreePeak charges a stage with the memory of the child processes it starts."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.measure import TreePeak, max_rss_mib

CHILD = ("import sys, time; b = bytearray(int(sys.argv[1]) * 2**20); "
         "b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)")


def test_tree_peak_counts_a_child_process_that_own_peak_does_not() -> None:
    # The child holds more than this process ever did, so only counting it can reach that much.
    child_mib = int(max_rss_mib()) + 200
    with TreePeak(os.getpid()) as peak:
        subprocess.run([sys.executable, "-c", CHILD, str(child_mib)], check=True, timeout=60)

    assert max_rss_mib() < child_mib
    assert peak.mib() >= child_mib
