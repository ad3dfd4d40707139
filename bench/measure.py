"""Measuring one benchmark stage in a fresh child process: wall time and peak memory (max RSS).

Each stage runs as `python -m bench.child STAGE ...` so its peak resident set size is its own
(`ru_maxrss` never goes down inside a process, so stages sharing one process could not be told
apart). The child loads its inputs from the previous stage's files before the clock starts,
times only the stage's own work, and writes one JSON object to the result file the parent reads.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class StageFailed(RuntimeError):
    """A child stage exited non-zero; the message carries the tail of its stderr."""


@dataclass
class StageContext:
    """What a stage function gets in the child: its inputs, a workdir for hand-over, a clock."""

    data: Path
    workdir: Path
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def timed(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    def save(self, name: str, value: Any) -> None:
        with open(self.workdir / f"{name}.pickle", "wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, name: str) -> Any:
        with open(self.workdir / f"{name}.pickle", "rb") as handle:
            return pickle.load(handle)  # noqa: S301 - our own hand-over file from the previous stage


def max_rss_mib() -> float:
    """Peak resident set size of this process so far plus the largest of its finished children
    (Linux reports ru_maxrss in KiB). A stage that hands work to a child process, as load_lines
    does with its SQLite reader, is charged for it; the sum is an upper bound on the peak of the
    process tree, since the two peaks need not coincide."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


@dataclass(frozen=True)
class StageResult:
    side: str
    stage: str
    seconds: float
    max_rss_mib: float
    notes: dict[str, Any]


def run_stage(side: str, stage: str, *, data: Path, workdir: Path,
              options: dict[str, Any] | None = None, timeout: float = 3600,
              memory_limit_bytes: int | None = None) -> StageResult:
    """Run one stage in a fresh `python -m bench.child` process and return what it measured.

    memory_limit_bytes caps the child's address space (RLIMIT_AS), so a stage that does not
    scale fails with MemoryError instead of pushing a shared machine into the OOM killer.
    """
    result_file = workdir / f"result-{side}-{stage}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.child", side, stage, "--data", str(data),
               "--workdir", str(workdir), "--result", str(result_file),
               "--options", json.dumps(options or {})]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    def cap_memory() -> None:
        if memory_limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    completed = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                               timeout=timeout, preexec_fn=cap_memory)
    if completed.returncode != 0 or not result_file.exists():
        tail = " | ".join(completed.stderr.strip().splitlines()[-5:])
        raise StageFailed(f"{side}/{stage} exited {completed.returncode}: {tail}")
    payload = json.loads(result_file.read_text())
    return StageResult(side=side, stage=stage, seconds=payload["seconds"],
                       max_rss_mib=payload["max_rss_mib"], notes=payload.get("notes", {}))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
