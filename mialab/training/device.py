"""Where models train and answer queries, and in which precision.

``device``: ``"auto"`` (a CUDA GPU when one is visible, else Apple's MPS when available, else the
CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``. Asking for a device this machine does not
have is refused with what it has; nothing falls back silently to another device.

``precision``: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: mixed precision by
``torch.autocast`` around each forward pass and loss, weights and optimiser state in float32
(the usual recipe; parameters are never stored in half precision):

- ``"bf16"`` on a CUDA GPU needs bf16 support (``torch.cuda.is_bf16_supported()``, Ampere and
  later); on the CPU it runs everywhere, natively on CPUs with AVX-512 BF16 or AMX, and
  *emulated* elsewhere (PyTorch converts to float32 for the matrix products, so it is slower than
  fp32 there, with bf16's rounding): :func:`precision_note` says which, and the audit records it
  in its warnings.
- ``"fp16"`` is for GPUs (with a gradient scaler against underflow); on the CPU it is refused.

Mixed precision changes the trained models at float level, so scores differ slightly from fp32
training; shadows and references follow the target's recipe, precision included (Kerckhoffs).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import torch

from mialab.validation import check_choice, check_str

__all__ = ["PRECISIONS", "resolve_device", "device_name", "check_precision", "precision_note", "autocast",
           "cpu_has_native_bf16", "model_device", "check_device_name"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_FORMS = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def check_device_name(device: Any, *, name: str = "device") -> str:
    """``device`` if it has one of the forms (:data:`_FORMS`), whether or not this machine has
    that device (a configuration may be written on one machine and run on another)."""
    device = check_str(device, name=name, hint=f"({_FORMS})")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise ValueError(f"{name} must be {_FORMS}, got {device!r}")
    return device


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` that ``device`` names; ``"auto"`` picks a GPU when one is visible.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = check_str(device, name="device", hint=f"({_FORMS})")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if m:
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but this machine has no CUDA GPU that PyTorch can use "
                             f"(torch {torch.__version__}, torch.cuda.is_available() is False): use device='cpu' "
                             "or 'auto'")
        index = int(m.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} CUDA "
                             f"GPU(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
        return torch.device("cuda", index)
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' asked for, but Apple's MPS backend is not available here: use "
                             "device='cpu' or 'auto'")
        return torch.device("mps")
    raise ValueError(f"device must be {_FORMS}, got {device!r}")


def device_name(device: torch.device) -> str:
    """A readable name of ``device`` for results: the GPU's model, or ``"cpu"``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def check_precision(precision: str, device: torch.device) -> str:
    """``precision`` if ``device`` can train in it, else a ``ValueError`` saying why."""
    precision = check_choice(precision, name="precision", options=PRECISIONS)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' is for CUDA GPUs (with a gradient scaler), got device {str(device)!r}: "
                         "use precision='bf16' or 'fp32' on the CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' needs a GPU with bf16 support (Ampere or later); "
                         f"{device_name(device)} has none: use precision='fp16' or 'fp32'")
    if precision == "bf16" and device.type == "mps":
        raise ValueError("precision 'bf16' is not supported on MPS here: use precision='fp32'")
    return precision


def precision_note(precision: str, device: torch.device) -> str | None:
    """A warning for a precision that runs but slowly here (bf16 emulated on a CPU without
    AVX-512 BF16 or AMX), else ``None``."""
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        return ("precision 'bf16' on a CPU without AVX-512 BF16 or AMX: PyTorch emulates it (slower than fp32 "
                "here, with bf16 rounding); use precision='fp32' on this machine unless measuring bf16 itself")
    return None


def autocast(precision: str, device: torch.device) -> Any:
    """The context of one forward pass and loss: ``torch.autocast`` in ``precision``'s dtype, or
    nothing for fp32 (so fp32 training is exactly what it was without this module)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> Any:
    """A gradient scaler for fp16 on a GPU (small gradients would underflow), else ``None``."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters (or buffers) live; the CPU for a model without any."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
