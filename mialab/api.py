"""The public entry points: the pipeline's audits and defense comparison, with the run directory.

The top layer (only the CLI sits beside it): :func:`audit`, :func:`audit_model` and
:func:`compare_defenses` check ``out`` before anything trains, run the pipeline
(:func:`mialab.pipeline.compose.run_audit`, :func:`mialab.pipeline.own_model.run_model_audit`,
:func:`mialab.comparison.run_comparison`, which write nothing but the model cache) and write the
run directory whole with :mod:`mialab.report`. Layers below import nothing from here.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mialab.comparison import DefenseComparison, run_comparison
from mialab.config import AuditConfig
from mialab.data import Dataset
from mialab.pipeline.compose import run_audit
from mialab.pipeline.own_model import run_model_audit
from mialab.report import check_run_dir, write_run
from mialab.report.writer import write_comparison
from mialab.results import AuditResults

__all__ = ["audit", "audit_model", "compare_defenses"]


def _config(config: AuditConfig | str | os.PathLike[str] | None) -> AuditConfig | None:
    """``config`` as an :class:`AuditConfig`: a TOML file path is read (:meth:`AuditConfig.from_toml`)."""
    if isinstance(config, (str, os.PathLike)):
        return AuditConfig.from_toml(config)
    if config is not None and not isinstance(config, AuditConfig):
        raise TypeError(f"config must be an AuditConfig, a TOML file path or None, got {type(config).__name__}")
    return config


def audit(dataset: str | Dataset | None = None, model: str = "mlp", attacks: Sequence[str] | None = None,
          seed: int = 0, out: str | Path | None = None, *, config: AuditConfig | str | Path | None = None,
          quiet: bool = False, cache_dir: str | Path | None = None, overwrite: bool = False,
          **settings: Any) -> AuditResults:
    """Run a whole membership-inference audit and return what it measured.

    Parameters
    ----------
    dataset: a built-in dataset name (``"digits"``, the default, ``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"``) or a :class:`~mialab.data.Dataset` (e.g. from ``from_arrays``).
    model: architecture name (``"logreg"``, ``"mlp"``, ``"cnn"``).
    attacks: attack names; default :data:`mialab.config.DEFAULT_ATTACKS`.
    seed: the root seed; every other seed derives from it.
    out: run directory to write config, split, scores, metrics, plots and the report into
        (optional); written whole once the audit is done (see :func:`mialab.write_run`), and
        checked before anything trains: an existing file, or a non-empty directory without
        ``overwrite``, is refused at once.
    overwrite: replace an existing run directory ``out`` as a whole (only once the new one is complete).
    config: a full :class:`AuditConfig` or the path of a TOML file holding one (as ``mialab audit
        --config``); the other arguments then must be left at their defaults.
    cache_dir: where trained models are stored and reused (see :mod:`mialab.fleet`): a second
        audit with the same settings trains nothing, an interrupted one resumes. ``None``: no cache.
    settings: any other :class:`AuditConfig` field (``n_shadows=4``, ``training=TrainConfig(...)``).
        ``backend`` may also be a :class:`mialab.fleet.backends.Backend` object
        (``backend=RayBackend("head:6379", max_retries=5)``): the configuration records its name
        (a custom backend's as ``"auto"``), ``results.execution`` what ran.

    Example
    -------
    >>> import mialab
    >>> res = mialab.audit("digits", attacks=["loss"], n_shadows=2, quiet=True)  # doctest: +SKIP
    >>> res.metrics["loss"].auc  # doctest: +SKIP
    """
    if out is not None:  # a bad out fails now, not after the training
        check_run_dir(out, overwrite=overwrite)
    config = _config(config)
    custom_data = isinstance(dataset, Dataset)
    backend = settings.get("backend")
    if backend is not None and not isinstance(backend, str):
        from mialab.fleet.base import Backend

        if not isinstance(backend, Backend):
            raise TypeError("backend must be a name ('auto', 'inprocess', 'processes', 'ray') or a "
                            f"mialab.fleet.backends.Backend, got {type(backend).__name__}")
        # the configuration names a built-in backend; results.execution records what ran
        from mialab.fleet.backends import BACKEND_NAMES

        settings = {**settings, "backend": backend.name if backend.name in BACKEND_NAMES else "auto"}
    else:
        backend = None
    if config is None:
        name = dataset.name if custom_data else (dataset or "digits")
        config = AuditConfig(dataset=name, model=model, seed=seed,
                             **({"attacks": attacks} if attacks is not None else {}), **settings)
    elif settings or attacks is not None or model != "mlp" or seed != 0:
        raise ValueError("pass either config=AuditConfig(...) or individual settings, not both")
    elif dataset is not None and not custom_data and dataset != config.dataset:
        raise ValueError(f"dataset {dataset!r} contradicts config.dataset {config.dataset!r}: pass one")
    res = run_audit(config, dataset=dataset if custom_data else None, quiet=quiet, cache_dir=cache_dir,
                    backend=backend)
    if out is not None:
        write_run(res, out, overwrite=overwrite)
    return res


def audit_model(model: Any, members: Any, nonmembers: Any, *, out: str | Path | None = None,
                overwrite: bool = False, **settings: Any) -> AuditResults:
    """Audit a trained model mialab did not train (a PyTorch module, a scikit-learn estimator or
    any function): :func:`mialab.pipeline.own_model.run_model_audit` (every keyword there:
    ``population``, ``access``, ``attacks``, ``train_fn``, ``model_factory``, ``config`` (an
    :class:`AuditConfig` or a TOML file, for the settings that apply to a user's model), ...),
    with the run directory. ``out``: checked before anything is queried or trained and written
    whole at the end, as in :func:`audit` (``overwrite`` replaces an existing run directory).

    Example
    -------
    >>> from sklearn.ensemble import RandomForestClassifier  # doctest: +SKIP
    >>> res = audit_model(RandomForestClassifier().fit(Xm, ym), (Xm, ym), (Xn, yn),  # doctest: +SKIP
    ...                   population=(Xp, yp), access="probabilities", out="runs/forest")
    """
    if out is not None:
        check_run_dir(out, overwrite=overwrite, name="out")
    res = run_model_audit(model, members, nonmembers, **settings)
    if out is not None:
        write_run(res, out, overwrite=overwrite)
    return res


def compare_defenses(candidates: list[str] | Mapping[str, Mapping[str, Any]] = ("l2", "dropout", "top-1"),
                     *, out: str | Path | None = None, overwrite: bool = False,
                     dataset: str | Dataset | None = None, data: str | Dataset | None = None,
                     config: AuditConfig | str | Path | None = None, **settings: Any) -> DefenseComparison:
    """Audit the undefended model and each candidate with the same seed, split and attacks
    (:func:`mialab.comparison.run_comparison`: ``candidates``, ``config``, ``baseline``,
    ``cache_dir``, ``quiet`` and any :class:`AuditConfig` field), with the run directory.

    ``dataset``: as for :func:`audit` (a name or a :class:`~mialab.data.Dataset`); ``data`` is
    its deprecated alias (a ``DeprecationWarning``; removed in the next release; both is a
    ``ValueError``). ``config``: an :class:`AuditConfig` or a TOML file path. ``out``: each
    audit is written to ``out/<candidate>/`` and the comparison to
    ``out/comparison.{json,txt}``, with its report (``out/report.html``, ``report.md`` and the
    ``results.json`` they read; not when ``baseline`` was given: its caller writes that audit's
    report), all of it once every candidate is audited, under a temporary name renamed into
    place. ``out`` is checked before anything trains: an existing non-empty directory is refused
    unless ``overwrite``, which replaces it as a whole once the new one is complete.
    """
    dataset = _dataset_argument(dataset, data)
    if out is not None:  # now, not after every candidate has trained
        check_run_dir(out, overwrite=overwrite)
    comparison = run_comparison(candidates, dataset=dataset, config=_config(config), **settings)
    if out is not None:
        write_comparison(comparison, out, report=not comparison.baseline_supplied, overwrite=overwrite)
    return comparison


def _dataset_argument(dataset: str | Dataset | None, data: str | Dataset | None) -> str | Dataset | None:
    """``compare_defenses``'s dataset: ``dataset``, or the deprecated ``data`` with a warning;
    the type is checked by :func:`~mialab.comparison.run_comparison`."""
    if data is not None:
        if dataset is not None:
            raise ValueError("pass the dataset once, as dataset= (data= is its deprecated alias), got both "
                             f"dataset={_short(dataset)} and data={_short(data)}")
        warnings.warn("compare_defenses(data=...) is deprecated and will be removed in the next release; "
                      "use dataset= (as in mialab.audit)", DeprecationWarning, stacklevel=3)
        dataset = data
    return dataset


def _short(dataset: object) -> str:
    return repr(dataset) if isinstance(dataset, str) else f"<{type(dataset).__name__}>"


def _with_keywords(facade: Any, core: Any, skip: int) -> None:
    """Show ``core``'s keywords in ``facade``'s signature (``help()``, IDEs), after its own."""
    own = inspect.signature(facade)
    params = list(own.parameters.values())
    names = {p.name for p in params}
    core_params = list(inspect.signature(core).parameters.values())[skip:]
    extra = [p for p in core_params if p.name not in names and p.kind is not inspect.Parameter.VAR_KEYWORD]
    fixed = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    var = [p for p in core_params if p.kind is inspect.Parameter.VAR_KEYWORD]
    facade.__signature__ = own.replace(parameters=fixed + extra + var)


_with_keywords(audit_model, run_model_audit, skip=3)
_with_keywords(compare_defenses, run_comparison, skip=1)
