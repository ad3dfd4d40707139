"""Scratch folders of the SQLite load and read (engine.store.lines), in the system's temp folder.

Each is removed when its work ends, whatever happens, except when the process is killed
(SIGKILL, out of memory): a load's staging files can then be as large as the lines themselves.
So a folder is named after its host and process, and the next scratch folder made on the same
host first removes the folders of processes that no longer exist.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.store.locks import process_alive

log = logging.getLogger(__name__)

PREFIX = "segmint-"
# segmint-PURPOSE-HOST-PID-RANDOM (tempfile's random part has no "-")
_NAME = re.compile(rf"^{PREFIX}[a-z]+-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


@contextlib.contextmanager
def scratch_folder(purpose: str, root: Path | None = None) -> Iterator[Path]:
    """A new empty folder for this process's scratch files, removed afterwards."""
    remove_abandoned(root)
    prefix = f"{PREFIX}{purpose}-{_host()}-{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=root) as folder:
        yield Path(folder)


def remove_abandoned(root: Path | None = None) -> list[Path]:
    """Removes the scratch folders of processes of this host that no longer exist; returns
    them. Folders of live processes and of other hosts are left alone."""
    root = Path(tempfile.gettempdir()) if root is None else root
    removed: list[Path] = []
    try:
        candidates = list(root.glob(f"{PREFIX}*"))
    except OSError:
        return removed
    for folder in candidates:
        match = _NAME.match(folder.name)
        if (match is None or match["host"] != _host() or not folder.is_dir()
                or process_alive(int(match["pid"]))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("removed %d scratch folder(s) left by killed processes in %s",
                 len(removed), root)
    return removed
