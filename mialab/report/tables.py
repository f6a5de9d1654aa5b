"""The summary table printed at the end of a run: :meth:`mialab.AuditResults.summary`."""

from __future__ import annotations

import warnings

from mialab.results import AuditResults

__all__ = ["summary_table"]


def summary_table(results: AuditResults) -> str:
    """Deprecated (removed in the next release): use ``results.summary()``, the same text."""
    warnings.warn("mialab.summary_table(results) is deprecated and will be removed in the next release; "
                  "use results.summary()", DeprecationWarning, stacklevel=2)
    if not isinstance(results, AuditResults):
        raise TypeError(f"results must be AuditResults, got {type(results).__name__}")
    return results.summary()
