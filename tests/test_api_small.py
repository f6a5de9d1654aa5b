"""Small API contracts of issue 13: the dataset keyword of ``compare_defenses`` (as ``audit``'s),
its deprecated ``data=`` alias. Nothing trains: the audits are intercepted."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mialab.comparison as comparison
from mialab import AuditConfig
from mialab.api import compare_defenses
from mialab.data import from_arrays


class _Stop(Exception):
    pass


@pytest.fixture
def calls(monkeypatch):
    """Replace the audit ``compare_defenses`` runs: record ``(dataset, config)`` and stop."""
    seen: list[tuple[object, AuditConfig]] = []

    def fake_audit(config, *, dataset, **_):
        seen.append((dataset, config))
        raise _Stop

    monkeypatch.setattr(comparison, "run_audit", fake_audit)
    return seen


def _tiny_dataset():
    rng = np.random.default_rng(0)
    return from_arrays(rng.normal(size=(40, 3)).astype("float32"), np.arange(40) % 2, name="mine")


def test_a_dataset_name_sets_the_configured_dataset(calls):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keyword warns nothing
        with pytest.raises(_Stop):
            compare_defenses(["top-1"], dataset="mnist", quiet=True)
    (given, config), = calls
    assert given is None and config.dataset == "mnist"


def test_a_dataset_name_agreeing_with_config_is_accepted_and_a_contradicting_one_refused(calls):
    with pytest.raises(_Stop):
        compare_defenses(["top-1"], config=AuditConfig(dataset="mnist"), dataset="mnist", quiet=True)
    assert calls[0][1].dataset == "mnist"
    with pytest.raises(ValueError, match=r"dataset 'digits' contradicts config.dataset 'mnist'"):
        compare_defenses(["top-1"], config=AuditConfig(dataset="mnist"), dataset="digits", quiet=True)
    assert len(calls) == 1  # refused before any audit


def test_a_dataset_object_is_what_every_audit_gets(calls):
    ds = _tiny_dataset()
    with pytest.raises(_Stop):
        compare_defenses(["top-1"], dataset=ds, quiet=True)
    assert calls[0][0] is ds


def test_data_is_a_deprecated_alias_of_dataset(calls):
    ds = _tiny_dataset()
    with pytest.warns(DeprecationWarning, match="use dataset=") as record:
        with pytest.raises(_Stop):
            compare_defenses(["top-1"], data=ds, quiet=True)
    assert calls[0][0] is ds
    assert record[0].filename == __file__  # points at the caller, not at mialab
    with pytest.warns(DeprecationWarning, match="use dataset="), pytest.raises(_Stop):
        compare_defenses(["top-1"], data="mnist", quiet=True)
    assert calls[1][1].dataset == "mnist"


def test_dataset_and_data_together_or_a_bad_type_are_refused(calls):
    with pytest.raises(ValueError, match=r"pass the dataset once, as dataset=.*got both dataset='digits' and "
                                         r"data=<Dataset>"):
        compare_defenses(["top-1"], dataset="digits", data=_tiny_dataset(), quiet=True)
    with pytest.raises(TypeError, match=r"dataset must be a dataset name, a mialab.data.Dataset or None, got int"):
        compare_defenses(["top-1"], dataset=3, quiet=True)
    assert calls == []


def test_run_comparison_refuses_a_config_that_is_not_one(calls):
    with pytest.raises(TypeError, match=r"config must be an AuditConfig or None .* got str"):
        comparison.run_comparison(["top-1"], config="audit.toml", quiet=True)
    assert calls == []
