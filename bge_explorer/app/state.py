"""One browser session's state: an engine :class:`~bge_explorer.session.Session` plus what the page shows.

Held in a ``gr.State`` (composition: the engine session is a field, never copied or subclassed). Gradio keeps
a closed tab's state for an hour so a reconnect finds it, then calls ``delete_callback`` (:func:`drop`),
which frees the memory and deletes the session's files; nothing is wiped when a connection drops.

A build in flight checks :meth:`AppState.check_cancelled` between batches: the Stop button, the client
leaving, or the state being dropped ends it quietly.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator

import numpy as np

from bge_explorer.app import workspace
from bge_explorer.errors import Cancelled
from bge_explorer.maps import projection
from bge_explorer.pickling import ProcessLocal
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.results import Ranking
from bge_explorer.retrieval.state import IndexState
from bge_explorer.session import Session


class AppState(ProcessLocal):
    """The engine session and the page's view of it: the last ranking, maps, marks, files, cancellation."""

    _process_local = {"_cancel": lambda self: threading.Event()}

    def __init__(self) -> None:
        self.session = Session()
        self.maps = projection.MapStore()
        self.ranking: Ranking | None = None
        self.ranking_state: IndexState | None = None  # the index the ranking came from
        self.ranking_config: RetrievalConfig | None = None
        self.shown_k = 0
        self.query_vector: np.ndarray | None = None
        self.notice: str | None = None  # offline-fallback notice of the loaded model
        self.compare = None  # the last comparison of two rankings
        self.marked_query: str | None = None  # a query opened from the Evaluate tab ...
        self.marked: set[str] = set()  # ... and its relevant document ids, marked in the results
        self.judging: tuple[str, list[str]] | None = None  # Workbench: the query being judged and its documents
        self.graded_row: tuple[str, int] | None = None  # Search: the result the grade keys act on (table, row)
        self.map_point: int | None = None  # Map: the chunk row last clicked ...
        self.map_selection: list[int] = []  # ... and the rows of the last lasso / box selection
        self.query_set: list[str] = []  # Workbench: the query set
        self.experiment = None  # Workbench: the last experiment's result, for its per-query view
        self.tuned_models: list[str] = []  # Workbench: directories of the models fine-tuned in this session
        self.workdir: str | None = None  # this session's private temporary directory (uploads, exports)
        # what the page shows (see app/views.py): the corpus is the bundled sample, the ranking last explained, the
        # index last mapped, the last evaluation ("a" or "ab")
        self.corpus_name: str | None = None
        self.explained_ranking: Ranking | None = None
        self.mapped_state: IndexState | None = None
        self.evaluated: str | None = None
        self.closed = False
        self._cancel = threading.Event()


    # -- files -------------------------------------------------------------------------------------------

    def ensure_workdir(self) -> str:
        """This session's private directory, created on first use (and again if it was swept)."""
        if self.workdir is None or not os.path.isdir(self.workdir):
            workspace.sweep()  # directories of sessions idle past the TTL go now
            self.workdir = workspace.new_dir()
        workspace.touch(self.workdir)
        return self.workdir

    # -- lifetime ----------------------------------------------------------------------------------------

    def start_work(self) -> None:
        """A long job begins: clear an earlier Stop."""
        self._cancel.clear()

    def cancel(self) -> None:
        """Stop the job in flight at its next batch."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Stop was pressed (or the session is closing) since the job in flight started."""
        return self._cancel.is_set() or self.closed

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled("Stopped.")

    def close(self) -> None:
        """The state was dropped: stop its work, delete its files, free its memory."""
        self.closed = True
        self._cancel.set()
        workspace.remove(self.workdir)
        self.workdir = None
        self.session.close()
        self.ranking = self.ranking_state = self.compare = self.query_vector = None
        self.explained_ranking = self.mapped_state = None
        self.maps = projection.MapStore()

    # -- views ---------------------------------------------------------------------------------------------

    def current_ranking(self) -> Ranking | None:
        """The last ranking, if it came from the index that is loaded now."""
        if self.ranking is not None and self.ranking_state is self.session.current:
            return self.ranking
        return None

    def map_key(self) -> str:
        state = self.session.index_state()
        if state.vectors is None:
            from bge_explorer.errors import ExplorerError

            raise ExplorerError("The map needs a dense index: build the index with an embedding model.")
        return projection.vectors_key(state.vectors, state.embedder.cache_key)


_RUNNING: dict[str, AppState] = {}  # browser session hash -> its state, while a long job runs (for unload)
_RUNNING_LOCK = threading.Lock()


@contextlib.contextmanager
def running(app: AppState, request: Any) -> Iterator[None]:
    """Mark a long job of ``app`` as running for its browser session (``request.session_hash``), so that the
    client leaving (:func:`cancel_running`) stops it; clears an earlier Stop."""
    app.start_work()
    key = getattr(request, "session_hash", None)
    if key:
        with _RUNNING_LOCK:
            _RUNNING[key] = app
    try:
        yield
    finally:
        if key:
            with _RUNNING_LOCK:
                if _RUNNING.get(key) is app:
                    del _RUNNING[key]


def cancel_running(session_hash: str | None) -> None:
    """Stop the running job of that browser session, if any, at its next batch; nothing is deleted."""
    with _RUNNING_LOCK:
        app = _RUNNING.get(session_hash or "")
    if app is not None:
        app.cancel()


def get(value: Any) -> AppState:
    """The state held in a ``gr.State``: None until the first event of a browser session."""
    return value if isinstance(value, AppState) else AppState()


def drop(value: Any) -> None:
    """``gr.State(delete_callback=...)``: the state expired (idle past the TTL, or an hour after its tab closed).
    Its memory goes back to the system (glibc keeps freed arenas otherwise: ``malloc_trim``)."""
    if isinstance(value, AppState):
        value.close()
        release_memory()


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc ``malloc_trim``; a no-op elsewhere)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
