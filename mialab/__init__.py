"""mialab: measure how much a model leaks about its training data.

>>> import mialab
>>> results = mialab.audit("digits", model="mlp", seed=0, out="runs/quickstart")  # doctest: +SKIP
>>> print(results.summary())  # doctest: +SKIP

The names below load lazily (PEP 562): ``import mialab`` or ``import mialab.metrics`` does not
import PyTorch; the first use of ``mialab.audit`` (say) imports what it needs.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from mialab._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "audit": "mialab.api",
    "audit_model": "mialab.api",
    "compare_defenses": "mialab.api",
    "recommend": "mialab.comparison",
    "DefenseComparison": "mialab.comparison",
    "make_attack": "mialab.attacks",
    "evaluate": "mialab.metrics",
    "leak_verdict": "mialab.metrics.verdict",
    "AuditConfig": "mialab.config",
    "AuditResults": "mialab.results",
    "TrainConfig": "mialab.training",
    "Dataset": "mialab.data",
    "from_arrays": "mialab.data",
    "from_csv": "mialab.data",
    "load_dataset": "mialab.data",
    "make_split": "mialab.data",
    "summary_table": "mialab.report",
    "write_run": "mialab.report",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # a subpackage or submodule (mialab.metrics, mialab.models, ...), imported on first use
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'mialab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
