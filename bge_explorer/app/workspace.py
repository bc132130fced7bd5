"""Per-session temporary directories for a public server.

Each browser session gets its own directory (mode 0700) under one root; uploads are copied there
before they are read and exports are written there. A directory is removed when its session ends
(tab closed, or the Gradio state expires after ``BGE_EXPLORER_SESSION_TTL_S`` idle seconds), and
:func:`sweep` removes any left idle longer than that (e.g. after a crash of a handler).
:func:`sweep_gradio_temp` removes what Gradio leaves in its own temp folder and never deletes, and
:func:`start_sweeper` runs both on a schedule in one background thread per process.
Nothing outside a session's own directory is ever handed to that session.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from bge_explorer import settings

SESSION_PREFIX = "session-"
UPLOAD_PREFIX = "tmp"  # tempfile.NamedTemporaryFile's: Gradio's upload parser and gr.File's preprocess use it
CACHE_DIR_NAME = re.compile(r"[0-9a-f]{64}")  # Gradio's cache folders: the SHA-256 of the file they hold


def upload_paths(files) -> list[str]:
    """The server paths of a ``gr.File`` value: one upload, a list of them, or none (-> [])."""
    files = files if isinstance(files, (list, tuple)) else ([files] if files else [])
    return [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]


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


def sweep_gradio_temp(folder: str | os.PathLike, age_s: float, *, cache_too: bool = False) -> list[str]:
    """Remove, from Gradio's temp folder, what Gradio never deletes; returns the paths removed.

    - loose upload files (``tmp*`` at the top level) not written for ``age_s`` seconds: ``gr.File`` leaves an
      empty one per uploaded file, and a client that disconnects mid-upload leaves its partial file (Gradio's
      multipart parser deletes them only on a parse error);
    - cache folders (64 hex digits) left empty once ``Blocks(delete_cache=...)`` deleted their file;
    - with ``cache_too`` (once, when the process starts), cache folders whose files are all older than
      ``age_s``: an earlier process registered them, so this one's ``delete_cache`` never will. Later runs leave
      files of this process to Gradio, which keeps some (``keep_in_cache``) on purpose.
    Only names of Gradio's own patterns are touched, so an operator's GRADIO_TEMP_DIR=/tmp loses nothing else.
    """
    cutoff = time.time() - age_s
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            if entry.name.startswith(UPLOAD_PREFIX) and entry.is_file(follow_symlinks=False):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(entry.path)
            elif CACHE_DIR_NAME.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                inside = list(Path(entry.path).rglob("*"))
                if not inside or (cache_too and all(p.lstat().st_mtime < cutoff for p in inside)):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(entry.path)
        except FileNotFoundError:  # deleted meanwhile (by Gradio, or a client finishing)
            continue
    return removed


_sweeper: threading.Thread | None = None


def start_sweeper(gradio_temp: str | os.PathLike) -> None:
    """Start (once per process) a daemon thread that runs :func:`sweep` and :func:`sweep_gradio_temp` every
    TTL / 4 seconds (between 1 and 60): idle sessions' directories and Gradio's leftovers go within about
    1.25 x the TTL, with or without new visitors."""
    global _sweeper
    with _lock:
        if _sweeper is not None:
            return
        _sweeper = threading.Thread(target=_sweep_forever, args=(gradio_temp,), name="bge-explorer-sweeper",
                                    daemon=True)
    _sweeper.start()


def _sweep_forever(gradio_temp: str | os.PathLike) -> None:
    cache_too = True
    while True:
        ttl = session_ttl_s()
        sweep(ttl)
        sweep_gradio_temp(gradio_temp, ttl, cache_too=cache_too)
        cache_too = False
        time.sleep(max(1.0, min(60.0, ttl / 4)))


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
