"""mialab: measure how much a model leaks about its training data.

>>> import mialab
>>> results = mialab.audit("digits", model="mlp", seed=0, out="runs/quickstart")  # doctest: +SKIP
>>> print(mialab.summary_table(results))  # doctest: +SKIP

The names below load lazily (PEP 562): ``import mialab`` or ``import mialab.metrics`` does not
import PyTorch; the first use of ``mialab.audit`` (say) imports what it needs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from mialab._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "audit": "mialab.audit",
    "audit_model": "mialab.own_model",
    "compare_defenses": "mialab.comparison",
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


class _Package(types.ModuleType):
    """The package's module type: a submodule named like a public function (``mialab.audit``,
    the module, vs ``mialab.audit``, the function) must not replace the function when the
    import system binds the submodule on the package after importing it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__ \
                and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
