"""2-D maps of chunk embeddings: a PCA preview at once, UMAP when it is ready, queries placed on both.

A map is fitted once per (vectors, model) and reused for every query: queries are placed with the
fitted projection's ``transform``. :mod:`bge_explorer.maps.points` turns a map into the page's binary payload;
:mod:`bge_explorer.maps.labels` names its clusters. No UI code here.

UMAP's first fit in a process pays numba's JIT (15 s and more on 2 cores); :func:`warm_up` runs a
tiny fit in a background thread at app start so the first user does not wait for it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
import threading
import warnings

import numpy as np

from bge_explorer import settings
from bge_explorer.maps import spaces

log = logging.getLogger(__name__)

MAPS_KEPT = 2  # a session keeps the maps of two spaces (its index and one to compare with)
MIN_UMAP_POINTS = 5  # below this, UMAP has no neighbourhood to speak of: the PCA map is the map
DEFAULT_NEIGHBORS = 15
RANDOM_STATE = 42  # the same corpus and model give the same map every time
FIT_SAMPLE = 50_000  # past this many chunks UMAP is fitted on a seeded sample of them and places the rest


@dataclasses.dataclass
class Projection:
    """A fitted 2-D projection of (n, dim) unit vectors. ``coords`` is (n, 2); ``kind`` is 'pca' or 'umap'."""

    kind: str
    coords: np.ndarray
    model: object
    note: str = ""

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """(m, dim) vectors (queries) -> (m, 2) positions on this map."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if len(vectors) == 0:
            return np.empty((0, 2), np.float32)
        if self.kind == "pca":
            mean, components = self.model
            return ((vectors - mean) @ components.T).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.model.transform(vectors), dtype=np.float32)


def fit_pca(vectors: np.ndarray) -> Projection:
    """Top two principal components (numpy SVD): milliseconds for thousands of vectors."""
    vectors = np.asarray(vectors, dtype=np.float32)
    mean = vectors.mean(axis=0)
    centered = vectors - mean
    if len(vectors) >= 2:
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        components = vt[:2]
    else:
        components = np.zeros((0, vectors.shape[1]), np.float32)
    if len(components) < 2:  # fewer than two points (or rank 1): pad with zero axes
        components = np.vstack([components, np.zeros((2 - len(components), vectors.shape[1]), np.float32)])
    components = components.astype(np.float32)
    return Projection("pca", (centered @ components.T).astype(np.float32), (mean, components))


def _kept(maps: dict[str, Projection], key: str, projection: Projection) -> dict[str, Projection]:
    """``maps`` with ``key`` added last, keeping the newest MAPS_KEPT."""
    out = {k: v for k, v in maps.items() if k != key}
    out[key] = projection
    return dict(list(out.items())[-MAPS_KEPT:])


_JIT_MODULES = ("umap", "pynndescent")
_jit_lock = threading.Lock()
_jit_cached = False


def import_umap():
    """``umap``, with numba's on-disk cache turned on for every function of umap and pynndescent.

    Most of UMAP's numba functions are not declared ``cache=True``, so each process compiles them again
    (15-30 s of CPU on 2 cores, competing with the first embedding). Turning the cache on (numba's
    ``Dispatcher.enable_caching``, what ``cache=True`` does) before their first call keeps the machine code in
    ``<cache dir>/numba`` (:meth:`~bge_explorer.settings.Settings.cache_path`): the next process loads it
    instead of compiling. numba checks each entry against its source file, so an upgrade recompiles."""
    global _jit_cached
    with _jit_lock:
        if not _jit_cached:
            import numba
            from numba.core.caching import NullCache
            from numba.core.registry import CPUDispatcher

            if not numba.config.CACHE_DIR:  # where enable_caching (and later cache=True imports) put entries
                numba.config.CACHE_DIR = str(settings.current().cache_path("numba"))
            import umap  # noqa: F401  (with its submodules: the dispatchers to switch)
            import umap.umap_  # noqa: F401

            for name, module in list(sys.modules.items()):
                if module is not None and name.split(".")[0] in _JIT_MODULES:
                    for obj in list(vars(module).values()):
                        if isinstance(obj, CPUDispatcher) and isinstance(obj._cache, NullCache):
                            obj.enable_caching()
            _jit_cached = True
    import umap

    return umap


def fit_umap(vectors: np.ndarray, n_neighbors: int = DEFAULT_NEIGHBORS, min_dist: float = 0.1,
             random_state: int | None = RANDOM_STATE, fit_sample: int = FIT_SAMPLE) -> Projection:
    """UMAP (cosine) over the vectors. Small sets are handled: fewer than MIN_UMAP_POINTS points give
    the PCA map with a note; ``n_neighbors`` is capped at n - 1; below 50 points the layout starts from a
    random init (spectral init needs a connected graph). Past ``fit_sample`` vectors UMAP is fitted on a
    seeded sample of ``fit_sample`` of them and the others are placed by its ``transform``: every chunk is
    drawn, and the note says how many shaped the map."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n > fit_sample >= MIN_UMAP_POINTS:
        rows = spaces.sample_rows(n, fit_sample)
        fitted = fit_umap(vectors[rows], n_neighbors, min_dist, random_state, fit_sample)
        rest = np.setdiff1d(np.arange(n), rows)
        coords = np.empty((n, 2), np.float32)
        coords[rows] = fitted.coords
        coords[rest] = fitted.transform(vectors[rest])
        return Projection("umap", coords, fitted.model, f"{fitted.note}; fitted on a sample of {fit_sample:,} of "
                                                        f"the {n:,} chunks, the other {n - fit_sample:,} placed "
                                                        "on it (UMAP's transform)")
    if n < MIN_UMAP_POINTS:
        pca = fit_pca(vectors)
        pca.note = f"only {n} chunk(s): UMAP needs at least {MIN_UMAP_POINTS}, showing PCA"
        return pca
    umap = import_umap()
    neighbors = max(2, min(n_neighbors, n - 1))
    reducer = umap.UMAP(n_neighbors=neighbors, n_components=2, metric="cosine", min_dist=min_dist,
                        init="random" if n < 50 else "spectral", random_state=random_state,
                        n_jobs=1 if random_state is not None else -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs/random_state and small-graph notices
        coords = reducer.fit_transform(vectors)
    note = f"n_neighbors={neighbors}" + (" (capped: small corpus)" if neighbors < n_neighbors else "")
    return Projection("umap", np.asarray(coords, dtype=np.float32), reducer, note)


def vectors_key(vectors: np.ndarray, model_key: object) -> str:
    """Fingerprint of (vectors, model): the cache key of a map. Same chunks, same model -> same key."""
    digest = hashlib.blake2b(np.ascontiguousarray(vectors, dtype=np.float32).tobytes(), digest_size=16)
    digest.update(repr(model_key).encode())
    return digest.hexdigest()


class MapStore:
    """One session's maps: PCA computed on demand, UMAP fitted once per key (in a background thread
    when asked), both reused for every query; the last MAPS_KEPT keys are kept. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pca: dict[str, Projection] = {}
        self._umap: dict[str, Projection] = {}
        self._pending: dict[str, threading.Event] = {}
        self._errors: dict[str, str] = {}
        self._derived: dict[tuple[str, str], object] = {}  # what is computed from a map once (clusters, labels)
        self.umap_fits = 0  # how many UMAP fits this store ran (a map is fitted once per key)

    def __getstate__(self) -> dict:  # locks and running fits stay behind (ZeroGPU pickles sessions)
        return {"_pca": self._pca, "_umap": self._umap, "umap_fits": self.umap_fits}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
        self.__dict__.update(state)

    def pca(self, key: str, vectors: np.ndarray) -> Projection:
        with self._lock:
            if key not in self._pca:
                self._pca = _kept(self._pca, key, fit_pca(vectors))
            return self._pca[key]

    def derived(self, key: str, name: str, compute):
        """``compute()`` once per (map key, name), kept for the last MAPS_KEPT keys (k-means, labels)."""
        with self._lock:
            if (key, name) in self._derived:
                return self._derived[(key, name)]
        value = compute()
        with self._lock:
            keys = list(dict.fromkeys([k for k, _ in self._derived if k != key] + [key]))[-MAPS_KEPT:]
            self._derived = {k: v for k, v in self._derived.items() if k[0] in keys}
            self._derived[(key, name)] = value
        return value

    def ready(self, key: str) -> Projection | None:
        with self._lock:
            return self._umap.get(key)

    def start_umap(self, key: str, vectors: np.ndarray) -> threading.Event:
        """Begin fitting UMAP for ``key`` in a daemon thread (no-op if done or running); returns its event."""
        with self._lock:
            if key in self._umap:
                done = threading.Event()
                done.set()
                return done
            if key in self._pending:
                return self._pending[key]
            done = self._pending[key] = threading.Event()
        vectors = np.array(vectors, dtype=np.float32, copy=True)

        def work() -> None:
            try:
                projection = fit_umap(vectors)
                with self._lock:
                    self._umap = _kept(self._umap, key, projection)
                    self.umap_fits += 1
            except Exception as exc:  # shown to the user; the PCA map stays usable
                log.exception("UMAP fit failed")
                with self._lock:
                    self._errors[key] = f"{type(exc).__name__}: {exc}"
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                done.set()

        threading.Thread(target=work, name="umap-fit", daemon=True).start()
        return done

    def umap(self, key: str, vectors: np.ndarray, timeout: float | None = None) -> Projection:
        """The UMAP map for ``key``, fitting it if needed and waiting for it (up to ``timeout`` seconds).

        Raises RuntimeError when the fit failed, TimeoutError when it is still running.
        """
        done = self.start_umap(key, vectors)
        if not done.wait(timeout):
            raise TimeoutError("UMAP is still computing")
        with self._lock:
            if key in self._umap:
                return self._umap[key]
            raise RuntimeError(self._errors.pop(key, "UMAP failed"))


_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def warm_up(background: bool = True) -> threading.Thread | None:
    """Compile UMAP's numba code once per process with a tiny fit and transform (about 15-30 s of CPU
    on 2 cores, paid at start instead of on the first user's map)."""
    global _warm_thread

    def work() -> None:
        try:
            rng = np.random.default_rng(0)
            data = rng.normal(size=(64, 16)).astype(np.float32)
            data /= np.linalg.norm(data, axis=1, keepdims=True)
            fit_umap(data).transform(data[:2])
            log.info("UMAP warmed up")
        except Exception:  # warming is an optimisation only
            log.exception("UMAP warm-up failed")

    with _warm_lock:
        if _warm_thread is not None:
            return _warm_thread
        if not background:
            work()
            return None
        _warm_thread = threading.Thread(target=work, name="umap-warm-up", daemon=True)
        _warm_thread.start()
        return _warm_thread


def clusters(vectors: np.ndarray, k: int | None = None) -> np.ndarray:
    """K-means cluster labels over the (unit) vectors; k defaults to about sqrt(n/2), between 2 and 12."""
    n = len(vectors)
    if n < 3:
        return np.zeros(n, dtype=np.int64)
    k = k or int(np.clip(round(np.sqrt(n / 2)), 2, 12))
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=min(k, n), n_init=3, random_state=0).fit_predict(vectors).astype(np.int64)
