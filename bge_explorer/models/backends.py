"""Which backend and precision run a model (its :class:`Route`), why, and the quality guard's stored results.

Backends: ``torch`` (FlagEmbedding's module, bf16 by CPU autocast) and ``openvino`` (the same module converted
by OpenVINO, :mod:`bge_explorer.models.openvino_backend`: fp32, bf16 or NNCF int8, on the CPU). Precision ``auto``:

- with torch: bf16 where the CPU has bf16 units, else fp32 (fp16 on CUDA);
- with openvino: the fastest OpenVINO precision the quality guard allows for this model on this CPU: int8 only
  once its guard has passed, a precision whose guard failed never, bf16 (on CPUs with bf16 units) and fp32
  unmeasured; ordered by the guard's measured seconds when every candidate has them, else int8 > bf16 > fp32.
  Then torch when OpenVINO is off (BGE_EXPLORER_OPENVINO=0), not installed or fails, and on a CUDA device.

The guard (:mod:`bge_explorer.evaluation.guard`) writes its results to ``guard/results.json`` in the cache folder
(BGE_EXPLORER_CACHE_DIR), keyed by this CPU (model name and the flags that change numerics) and the model's
identity, pooling and max length: a result measured on another CPU or another model revision is never used.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
from typing import Callable

from bge_explorer import settings
from bge_explorer.errors import ConfigError
from bge_explorer.models.catalog import ModelSpec
from bge_explorer.models.devices import PRECISIONS, cpu_has_bf16, resolve_precision

BACKENDS: tuple[str, ...] = ("torch", "openvino")
DEFAULT_BACKEND = "torch"
OPENVINO_PRECISIONS = ("int8", "bf16", "fp32")  # fastest first, as measured on a 2-core AMX Xeon (docs/cpu.md)
MIN_COSINE = 0.99  # the guard: min cosine to torch fp32 over the 640-passage SciFact sample
NDCG_TOLERANCE = 0.003  # and SciFact nDCG@10 within this of torch fp32's
NUMERIC_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_bf16", "amx_int8")
GUARD_HINT = "python bench/openvino_throughput.py --guard"


def check(backend: str, precision: str) -> None:
    """Raise ConfigError naming the field when ``backend`` or ``precision`` is unknown, or they do not go together."""
    if backend not in BACKENDS:
        raise ConfigError("backend", f"must be one of {', '.join(BACKENDS)}, not {str(backend)[:40]!r}")
    if precision not in PRECISIONS:
        raise ConfigError("precision", f"must be one of {', '.join(PRECISIONS)}, not {str(precision)[:40]!r}")
    if backend == "torch" and precision == "int8":
        raise ConfigError("precision", "int8 runs on the openvino backend only (torch's dynamic int8 measured a "
                                       "min cosine of 0.856 to fp32: unusable)")


def deployment_route(config: settings.Settings | None = None) -> dict[str, str]:
    """The backend and precision the app loads its models with (BGE_EXPLORER_BACKEND, BGE_EXPLORER_PRECISION;
    ``app.py --backend/--precision``), as ``load_embedder`` / ``RetrievalConfig`` keyword arguments. SettingsError
    naming the variable when they are unknown or do not go together."""
    config = config or settings.current()
    try:
        check(config.backend, config.precision)
    except ConfigError as exc:
        variable = settings.PREFIX + exc.field.upper()
        raise settings.SettingsError(f"{variable}: {exc.reason}") from None
    return {"backend": config.backend, "precision": config.precision}


@dataclasses.dataclass(frozen=True)
class Route:
    """One way to run a model: ``backend`` at ``precision`` (resolved, never auto), and ``note``: which path runs
    and why, for people."""

    backend: str
    precision: str
    note: str


@dataclasses.dataclass(frozen=True)
class GuardResult:
    """One path's guard figures on this CPU: cosines over ``passages`` SciFact passages against torch fp32,
    SciFact nDCG@10 against torch fp32's, and the seconds it took to embed those passages."""

    backend: str
    precision: str
    min_cosine: float
    mean_cosine: float
    ndcg: float
    reference_ndcg: float
    seconds: float
    passages: int
    versions: str  # e.g. "openvino 2026.4.1, nncf 3.4.0"
    measured: str  # ISO date and time

    @property
    def passed(self) -> bool:
        return self.min_cosine >= MIN_COSINE and abs(self.ndcg - self.reference_ndcg) <= NDCG_TOLERANCE

    def summary(self) -> str:
        return (f"min cosine {self.min_cosine:.4f}, SciFact nDCG@10 {self.ndcg:.4f} vs fp32 {self.reference_ndcg:.4f},"
                f" {self.seconds:.1f} s for {self.passages} passages, measured {self.measured[:10]}")


@functools.cache
def cpu_signature() -> str:
    """This CPU's model name and the instruction-set flags that change speed or numerics."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return f"{name} [{' '.join(f for f in NUMERIC_FLAGS if f in flags)}]"


def _guard_file(current: settings.Settings) -> str:
    return str(current.cache_path("guard") / "results.json")


def _guard_key(spec: ModelSpec, identity: str) -> str:
    return f"{cpu_signature()}|{identity}|{spec.pooling}|{spec.max_length}"


def _read_guard(current: settings.Settings) -> dict:
    try:  # a cache folder that cannot be made reads as no results
        with open(_guard_file(current), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def guard_results(spec: ModelSpec, identity: str, current: settings.Settings | None = None
                  ) -> dict[tuple[str, str], GuardResult]:
    """The stored guard results for this model on this CPU: ``{(backend, precision): result}``."""
    stored = _read_guard(current or settings.current()).get(_guard_key(spec, identity), {})
    fields = {f.name for f in dataclasses.fields(GuardResult)}
    return {(r["backend"], r["precision"]): GuardResult(**r) for r in stored.values()
            if isinstance(r, dict) and set(r) == fields}


def record_guard(spec: ModelSpec, identity: str, results: list[GuardResult],
                 current: settings.Settings | None = None) -> str:
    """Store ``results`` for this model on this CPU (replacing earlier ones of the same paths); returns the file."""
    current = current or settings.current()
    data = _read_guard(current)
    entry = data.setdefault(_guard_key(spec, identity), {})
    for result in results:
        entry[f"{result.backend}-{result.precision}"] = dataclasses.asdict(result)
    path = _guard_file(current)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(temporary, path)
    return path


def _torch_route(precision: str, device: str, why: str = "") -> Route:
    actual = resolve_precision(precision, device)
    if why:
        reason = why
    elif precision != "auto" or device.startswith("cuda"):
        reason = ""
    else:
        reason = "auto, this CPU has bf16 units" if actual == "bf16" else "auto, this CPU has no bf16 units"
    return Route("torch", actual, f"torch {actual} on {device}" + (f": {reason}" if reason else ""))


def _guard_status(result: GuardResult | None) -> str:
    if result is None:
        return f"no quality guard result for this model on this CPU ({GUARD_HINT})"
    return f"quality guard {'passed' if result.passed else 'FAILED'} on this CPU ({result.summary()})"


def routes(spec: ModelSpec, identity: Callable[[], str], backend: str, precision: str, device: str,
           current: settings.Settings | None = None) -> list[Route]:
    """The routes to try in order for a request (the first that loads runs). An explicit precision gives one
    route; openvino + auto gives the OpenVINO precisions the guard allows, then torch as the fallback.
    ``identity()`` gives the model's identity (it may have to find the model's files), asked for OpenVINO only."""
    check(backend, precision)
    current = current or settings.current()
    if backend == "torch":
        return [_torch_route(precision, device)]
    results = guard_results(spec, identity(), current)
    if precision != "auto":
        return [Route("openvino", precision, f"openvino {precision} on the CPU; "
                                             f"{_guard_status(results.get(('openvino', precision)))}")]
    if device.startswith("cuda"):
        return [_torch_route("auto", device, "a CUDA device is present (faster than OpenVINO on the CPU)")]
    if not current.openvino:
        return [_torch_route("auto", device, "OpenVINO is off on this server (BGE_EXPLORER_OPENVINO=0)")]
    allowed, skipped = [], []
    for p in OPENVINO_PRECISIONS:
        result = results.get(("openvino", p))
        if result is not None and not result.passed:
            skipped.append(f"{p} not used: its {_guard_status(result)}")
        elif p == "int8" and result is None:
            skipped.append(f"int8 not used until its quality guard passes: {_guard_status(None)}")
        elif p == "bf16" and not cpu_has_bf16():
            skipped.append("bf16 not used: this CPU has no bf16 units")
        else:
            allowed.append(p)
    if allowed and all(("openvino", p) in results for p in allowed):
        allowed.sort(key=lambda p: results[("openvino", p)].seconds)
    out = []
    for p in allowed:
        result = results.get(("openvino", p))
        why = (f"the fastest path that passed the quality guard on this CPU ({result.summary()})" if result else
               "the fastest path allowed without a guard result")
        note = "; ".join([f"openvino {p} on the CPU: auto, {why}", *skipped])
        out.append(Route("openvino", p, note))
    return out + [_torch_route("auto", device, "OpenVINO could not be used")]
