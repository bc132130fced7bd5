"""Objects that travel between processes without their process-local parts.

ZeroGPU (Hugging Face Spaces) runs a GPU function in a forked process and pickles what it returns, the
browser session's state included. Locks, events and FAISS indexes cannot be pickled: a class lists them in
``_process_local`` and rebuilds them in ``_rebuild_local``. Models are process-wide: an embedder or reranker
pickles as its spec and is found again in the model cache (see :mod:`bge_explorer.models.loading`).
"""
from __future__ import annotations


class ProcessLocal:
    """Mixin: pickle without the attributes named in ``_process_local``; ``_rebuild_local`` recreates them."""

    _process_local: tuple[str, ...] = ("_lock",)

    def _rebuild_local(self) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._process_local}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._rebuild_local()
