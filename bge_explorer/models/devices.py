"""Where models run and at what precision: cuda:0 with fp16 when CUDA is present, else CPU."""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Literal

import torch

from bge_explorer.errors import ConfigError

Precision = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")  # int8: the OpenVINO backend only


def default_device() -> str:
    """``"cuda:0"`` when a CUDA device is visible, else ``"cpu"``."""
    return "cuda:0" if torch.cuda.is_available() else "cpu"


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 matrix units (AMX or AVX512-BF16), where bf16 is faster than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def resolve_precision(precision: Precision, device: str) -> str:
    """The precision torch actually uses: ``fp16`` on CUDA; on CPU ``bf16`` only where the CPU has bf16 units."""
    if device.startswith("cuda"):
        return "fp16"
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError("precision", f"must be auto, fp32 or bf16 with the torch backend, not {str(precision)[:40]!r}"
                                       " (int8 runs with --backend openvino)")
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


@contextlib.contextmanager
def autocast(precision: str, device: str) -> Iterator[None]:
    """Run the enclosed forward passes in bf16 on CPU when asked; no-op otherwise (fp16 weights on GPU)."""
    if precision == "bf16" and device == "cpu":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield
