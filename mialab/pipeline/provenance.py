"""Provenance: the library versions and the hardware a result was computed with.

Two runs agree bit for bit only where these agree (see README, "Reproducibility").
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

__all__ = ["versions", "hardware"]


#: the distributions whose versions can change a number an audit reports
_VERSIONED = ("numpy", "scipy", "torch", "torchvision", "scikit-learn", "opacus", "skops", "matplotlib",
              "tqdm", "threadpoolctl", "joblib")
#: CPU features that change which kernels PyTorch and OpenBLAS run (so float rounding)
_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16",
              "amx_tile", "amx_int8")


def versions() -> dict[str, str]:
    """mialab's, Python's and every library's version that enters a result (``"not installed"``
    for an optional one that is absent), the platform and torch's thread count."""
    from importlib import metadata

    import torch

    from mialab._version import __version__

    found = {"mialab": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["torch"] = torch.__version__  # the build tag (+cpu, +cu130) matters too
    found.update(platform=platform.platform(), torch_threads=str(torch.get_num_threads()))
    return found


def hardware(device: Any = None) -> dict[str, Any]:
    """What the run ran on (``device``: where its models trained, named with the GPU's model): CPU model, its features that select kernels (``cpu_flags``),
    PyTorch's CPU capability (the vector ISA its kernels were dispatched for: ``"AVX2"``,
    ``"AVX512"``, ...), logical cores, torch threads, device. Two runs agree bit for bit only
    where these and :func:`versions` agree (see README, "Reproducibility")."""
    import os

    import torch

    from mialab.training.device import device_name

    info: dict[str, str] = {}  # the first processor's /proc/cpuinfo fields
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or "unknown"
    flags = set(info.get("flags", "").split())
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # older torch builds
        capability = "unknown"
    return {"cpu": cpu, "cpu_flags": " ".join(f for f in _CPU_FLAGS if f in flags) or "none listed",
            "torch_cpu_capability": capability,
            "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": "cpu" if device is None else device_name(torch.device(device))}

