"""Scratch folders of the SQLite load and read (engine.store.lines_write and lines_read), in the
system's temp folder.

Each is removed when its work ends, whatever happens, except when the process is killed
(SIGKILL, out of memory): a load's staging files can then be as large as the lines themselves.
So the next scratch folder made on the same host first removes the folders left that way.

A folder in use is one whose owner holds an flock on it: the kernel drops the lock when the
owner dies, whatever killed it, and a process in another PID namespace sharing /tmp (containers
of one pod) holds it just the same. A folder is made under a hidden name, locked, then renamed,
so it is never seen unlocked under its real name. The name (segmint-PURPOSE-HOST-PID-RANDOM) only
narrows the candidates to this host's folders whose process id is gone here. Clean-up is best
effort: it never fails its caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.store.db import StoreError
from engine.store.locks import process_alive

log = logging.getLogger(__name__)

PREFIX = "segmint-"
# segmint-PURPOSE-HOST-PID-RANDOM (tempfile's random part has no "-")
_NAME = re.compile(rf"^{PREFIX}[a-z]+-(?P<host>.+)-(?P<pid>\d{{1,10}})-[a-z0-9_]+$")
_PURPOSE = re.compile(r"^[a-z]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


@contextlib.contextmanager
def scratch_folder(purpose: str, root: Path | None = None) -> Iterator[Path]:
    """A new empty folder for this process's scratch files, locked while in use and removed
    afterwards. StoreError (naming the temp folder) when it cannot be made."""
    if not _PURPOSE.match(purpose):
        raise ValueError(f"scratch folder purpose must be lower-case letters: {purpose!r}")
    remove_abandoned(root)
    try:
        hidden = Path(tempfile.mkdtemp(prefix=f".{PREFIX}", dir=root))
    except OSError as exc:
        place = root if root is not None else tempfile.tempdir or "the system's temp folder"
        raise StoreError(f"no scratch folder for the {purpose} in {place}: "
                         f"{exc.strerror or exc} (set TMPDIR to a writable folder)") from None
    handle = os.open(hidden, os.O_RDONLY)
    folder = hidden
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        folder = hidden.with_name(f"{PREFIX}{purpose}-{_host()}-{os.getpid()}-"
                                  f"{hidden.name.rsplit('-', 1)[-1]}")
        hidden.rename(folder)  # the same directory, still locked
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(handle)  # drops the lock


def remove_abandoned(root: Path | None = None) -> list[Path]:
    """Removes the scratch folders of this host no live process holds; returns them. Folders of
    live processes and of other hosts are left alone."""
    root = Path(tempfile.gettempdir()) if root is None else root
    removed: list[Path] = []
    try:
        candidates = list(root.glob(f"{PREFIX}*"))
    except OSError:
        return removed
    for folder in candidates:
        match = _NAME.match(folder.name)
        try:
            if (match is None or match["host"] != _host() or process_alive(int(match["pid"]))
                    or folder.is_symlink() or not folder.is_dir()):
                continue
            if _unlocked(folder):
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    removed.append(folder)
        except (OSError, OverflowError, ValueError):
            continue
    if removed:
        log.info("removed %d scratch folder(s) left by killed processes in %s",
                 len(removed), root)
    return removed


def _unlocked(folder: Path) -> bool:
    """True when no process holds the folder's lock (taken and let go at once)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(handle)
    return True
