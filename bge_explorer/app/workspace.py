"""Per-session temporary directories for a public server.

Each browser session gets its own directory (mode 0700) under one root; uploads are copied there
before they are read and exports are written there. A directory is removed when its session ends
(tab closed, or the Gradio state expires after ``BGE_EXPLORER_SESSION_TTL_S`` idle seconds), and
:func:`sweep` removes any left idle longer than that (e.g. after a crash of a handler).
Nothing outside a session's own directory is ever handed to that session.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from bge_explorer import settings

SESSION_PREFIX = "session-"


def session_ttl_s() -> float:
    """Idle seconds after which a session's state and files are dropped (see :class:`~bge_explorer.settings.Settings`)."""
    return settings.current().session_ttl_s


def root() -> Path:
    """The folder holding every session directory: BGE_EXPLORER_TMP_DIR, else <system temp>/bge-explorer-sessions."""
    return settings.current().sessions_root()


_lock = threading.Lock()
_last_used: dict[str, float] = {}


def new_dir() -> str:
    """A fresh private directory for one session."""
    path = tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=root())
    os.chmod(path, 0o700)
    touch(path)
    return path


def touch(path: str | None) -> None:
    if path:
        with _lock:
            _last_used[path] = time.monotonic()


def remove(path: str | None) -> None:
    """Delete a session directory and everything in it (no error if it is gone already)."""
    if not path:
        return
    with _lock:
        _last_used.pop(path, None)
    real = os.path.realpath(path)
    if os.path.dirname(real) == os.path.realpath(root()) and os.path.basename(real).startswith(SESSION_PREFIX):
        shutil.rmtree(real, ignore_errors=True)


def sweep(ttl_s: float | None = None) -> list[str]:
    """Remove session directories idle for more than ``ttl_s`` (default :func:`session_ttl_s`); returns them."""
    ttl_s = session_ttl_s() if ttl_s is None else ttl_s
    now = time.monotonic()
    with _lock:
        stale = [path for path, used in _last_used.items() if now - used > ttl_s]
        known = set(_last_used)
    cutoff = time.time() - ttl_s  # left by an earlier process (a restart or a crash): judged by modification time
    for entry in os.scandir(root()):
        if (entry.name.startswith(SESSION_PREFIX) and entry.path not in known and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff):
            stale.append(entry.path)
    for path in stale:
        remove(path)
    return stale


def live_dirs() -> list[str]:
    with _lock:
        return list(_last_used)


def copy_in(paths: Sequence[str], folder: str) -> tuple[list[str], list[str]]:
    """Copy uploaded files into ``folder/uploads`` (a fresh subfolder per call); -> (copies, display names).

    Names keep only their base name, so nothing can be written outside the folder.
    """
    target = Path(tempfile.mkdtemp(prefix="upload-", dir=folder))
    copies, names = [], []
    for i, path in enumerate(paths):
        name = os.path.basename(str(path)) or f"file-{i}"
        dest = target / f"{i:04d}" / name
        dest.parent.mkdir()
        shutil.copyfile(path, dest)
        copies.append(str(dest))
        names.append(name)
    return copies, names
