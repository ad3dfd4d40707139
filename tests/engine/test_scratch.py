"""Scratch folders of the SQLite load and read: leftovers of killed processes are removed, folders
in use never are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store.scratch import _host, _unlocked, remove_abandoned, scratch_folder
from tests.conftest import dead_pid


def _folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "staging-0.db").write_bytes(b"x" * 10)
    return folder


def test_only_unlocked_folders_of_gone_processes_of_this_host_are_removed(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    gone = [_folder(tmp_path, f"segmint-load-{_host()}-{dead}-abc123"),
            _folder(tmp_path, f"segmint-read-{_host()}-{dead}-x_9")]
    kept = [_folder(tmp_path, f"segmint-load-{_host()}-{alive}-abc123"),
            _folder(tmp_path, f"segmint-load-elsewhere-{dead}-abc123"),
            _folder(tmp_path, "segmint-notes"),
            # a pid no system has: skipped, and the clean-up goes on
            _folder(tmp_path, f"segmint-load-{_host()}-9999999999-abc")]
    (tmp_path / f"segmint-load-{_host()}-{dead}-file").write_text("a file, not a folder")
    kept.append(tmp_path / f"segmint-load-{_host()}-{dead}-file")

    removed = remove_abandoned(tmp_path)

    assert sorted(removed) == sorted(gone)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_a_folder_locked_by_a_live_process_is_kept_whatever_its_name_says(tmp_path: Path) -> None:
    """A process in another PID namespace (a container sharing /tmp) has an id this one cannot
    see: its folder looks abandoned by name, but its lock keeps it."""
    folder = _folder(tmp_path, f"segmint-load-{_host()}-{dead_pid()}-other")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; h = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
         str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert remove_abandoned(tmp_path) == [] and folder.exists()
    finally:
        holder.communicate("")  # it exits, and its lock goes with it
    assert remove_abandoned(tmp_path) == [folder] and not folder.exists()


def test_scratch_folder_is_named_for_this_process_locked_and_removed_after(
        tmp_path: Path) -> None:
    leftover = _folder(tmp_path, f"segmint-load-{_host()}-{dead_pid()}-old")
    with scratch_folder("load", tmp_path) as folder:
        assert folder.parent == tmp_path and folder.is_dir()
        assert folder.name.startswith(f"segmint-load-{_host()}-{os.getpid()}-")
        assert not leftover.exists()
        assert not _unlocked(folder)  # what another process's clean-up sees
        (folder / "staging-0.db").write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="lower-case letters"), \
            scratch_folder("Load-2", tmp_path):
        pass


def test_a_temp_folder_that_cannot_be_used_is_named(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from engine.store.db import StoreError

    missing = tmp_path / "gone"
    with pytest.raises(StoreError, match=rf"^no scratch folder for the load in {missing}: "
                                         "No such file or directory"), \
            scratch_folder("load", missing):
        pass
    monkeypatch.setattr(tempfile, "tempdir", str(missing))  # the system's temp folder
    with pytest.raises(StoreError, match=rf"^no scratch folder for the read in {missing}: "), \
            scratch_folder("read"):
        pass
