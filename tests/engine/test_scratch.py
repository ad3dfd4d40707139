"""Scratch folders of the SQLite load and read: leftovers of killed processes are removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.store.scratch import _host, remove_abandoned, scratch_folder


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_folders_of_gone_processes_of_this_host_are_removed(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    names = {
        "dead": f"segmint-load-{_host()}-{dead}-abc123",
        "dead_read": f"segmint-read-{_host()}-{dead}-x_9",
        "alive": f"segmint-load-{_host()}-{alive}-abc123",
        "other_host": f"segmint-load-elsewhere-{dead}-abc123",
        "not_ours": "segmint-notes",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "staging-0.db").write_bytes(b"x" * 10)
    (tmp_path / f"segmint-load-{_host()}-{dead}-file").write_text("a file, not a folder")

    removed = remove_abandoned(tmp_path)

    assert sorted(path.name for path in removed) == sorted([names["dead"], names["dead_read"]])
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == sorted([names["alive"], names["other_host"], names["not_ours"],
                           f"segmint-load-{_host()}-{dead}-file"])


def test_scratch_folder_is_named_for_this_process_and_removed_after(tmp_path: Path) -> None:
    leftover = tmp_path / f"segmint-load-{_host()}-{_dead_pid()}-old"
    leftover.mkdir()
    with scratch_folder("load", tmp_path) as folder:
        assert folder.parent == tmp_path and folder.is_dir()
        assert folder.name.startswith(f"segmint-load-{_host()}-{os.getpid()}-")
        assert not leftover.exists()
        (folder / "staging-0.db").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []
