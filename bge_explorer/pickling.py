"""Objects that travel between processes without their process-local parts.

ZeroGPU (Hugging Face Spaces) runs a GPU function in a forked process and pickles what it returns, the
browser session's state included. Locks, events and FAISS indexes cannot be pickled: a class maps each such
attribute to the factory that rebuilds it, in ``_process_local``. Models are process-wide: an embedder or
reranker pickles as its spec and is found again in the model cache (see :mod:`bge_explorer.models.loading`).
"""
from __future__ import annotations

import threading
from typing import Any, Callable


class ProcessLocal:
    """Mixin: pickle without the attributes of ``_process_local``, each rebuilt on load by its factory(self)."""

    _process_local: dict[str, Callable[[Any], Any]] = {"_lock": lambda self: threading.Lock()}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._process_local}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for name, make in self._process_local.items():
            setattr(self, name, make(self))
