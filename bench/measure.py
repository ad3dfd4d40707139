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
import threading
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
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB).

    Children are not in it: RUSAGE_CHILDREN would charge each child with the parent's pages it
    briefly shared before exec. TreePeak measures a stage together with its child processes.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_kib(pid: int | str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int | str) -> list[str]:
    found: list[str] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend((task / "children").read_text().split())
    except OSError:
        pass
    return found


class TreePeak:
    """The peak resident memory of a process plus its live descendants, sampled from /proc by a
    thread every `interval` seconds (Linux only; elsewhere it stays 0).

    run_stage samples a stage's process tree from the parent, never inside the stage: a sampling
    thread there would take the GIL from the code being timed. A stage that hands work to a child
    process (load_lines' SQLite reader) is charged for it. A spike shorter than the interval can
    be missed, so run_stage also takes the stage's own exact ru_maxrss as a floor.
    """

    def __init__(self, root: int, interval: float = 0.02) -> None:
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-peak", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total, pending = 0, [str(self.root)]
            while pending:
                pid = pending.pop()
                total += _rss_kib(pid)
                pending.extend(_children(pid))
            self.peak_kib = max(self.peak_kib, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mib(self) -> float:
        return self.peak_kib / 1024


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

    with subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, preexec_fn=cap_memory) as process, \
            TreePeak(process.pid) as tree:
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    if process.returncode != 0 or not result_file.exists():
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        raise StageFailed(f"{side}/{stage} exited {process.returncode}: {tail}")
    payload = json.loads(result_file.read_text())
    # The stage's own exact peak, or its process tree's sampled peak when that is higher.
    return StageResult(side=side, stage=stage, seconds=payload["seconds"],
                       max_rss_mib=max(payload["max_rss_mib"], tree.mib()),
                       notes=payload.get("notes", {}))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
