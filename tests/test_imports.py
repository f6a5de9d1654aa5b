"""Import layering: the pure-numpy parts load without PyTorch, and the package loads lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (this one has imported everything already)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("module", ["mialab", "mialab.metrics", "mialab.metrics.family", "mialab.metrics.verdict",
                                    "mialab.report"])
def test_numpy_layers_do_not_import_torch_or_the_pipeline(module):
    out = _fresh(f"import sys, {module}; "
                 "print(sorted(m for m in ('torch', 'mialab.api', 'mialab.pipeline.compose', 'mialab.comparison', "
                 "'mialab.training') "
                 "if m in sys.modules))")
    assert out == "[]", f"import {module} loaded {out}"


def test_public_names_load_on_first_use():
    out = _fresh("import sys, mialab; before = 'mialab.api' in sys.modules; f = mialab.audit; "
                 "print(before, 'mialab.api' in sys.modules, f.__module__, mialab.__version__ != '')")
    assert out == "False True mialab.api True"
    import mialab

    assert set(mialab.__all__) <= set(dir(mialab))
    for name in mialab.__all__:
        assert getattr(mialab, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mialab.nope  # noqa: B018


def test_no_submodule_is_named_like_a_public_function():
    # importing a submodule binds it on the package: a module mialab/pipeline/compose.py would replace the
    # function mialab.audit once imported; so no public name may also be a submodule's
    import importlib.util

    import mialab

    clashes = [n for n in mialab._EXPORTS if importlib.util.find_spec(f"mialab.{n}") is not None]
    assert clashes == []
    out = _fresh("import mialab.api, mialab.pipeline.compose, mialab.comparison, mialab; "
                 "print(callable(mialab.audit), callable(mialab.audit_model), mialab.audit.__module__)")
    assert out == "True True mialab.api"


def test_subpackages_are_reachable_as_attributes():
    out = _fresh("import mialab; print(mialab.models.build_model.__name__, mialab.metrics.roc_auc.__name__)")
    assert out == "build_model roc_auc"
