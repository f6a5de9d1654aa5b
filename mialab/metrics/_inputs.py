"""Input checks shared by every metric: the contract of ``(scores, is_member)`` and FPR targets.

Each public metric validates at its boundary with these helpers, then calls a private core that
trusts its arrays. Messages name the argument, what was expected and what was received.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mialab.types import check_finite
from mialab.validation import check_int, check_real, check_reals


def check_scores_membership(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(scores, is_member)`` as a float64 ``(n,)`` and a bool ``(n,)`` array, or raise.

    ``scores`` may have any integer or floating dtype (cast to float64) but must be finite.
    ``is_member`` must already be bool: integer 0/1 arrays are refused rather than cast, because a
    label vector or an index array passed by mistake would otherwise be read as membership.
    """
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be a 1-D array of shape (n,), got shape {s.shape}")
    if s.dtype.kind not in "iuf":
        raise TypeError(
            f"scores must be real numbers (integer or floating dtype), got dtype {s.dtype}"
            + ("; convert explicitly, e.g. scores.astype(np.float64)" if s.dtype.kind == "b" else "")
        )
    s = s.astype(np.float64, copy=False)
    check_finite(s, name="scores")
    m = np.asarray(is_member)
    if m.dtype != np.bool_:
        raise TypeError(
            f"is_member must be a bool array (True = member), got dtype {m.dtype}; "
            "integer 0/1 arrays are not cast silently, pass is_member.astype(bool) if intended"
        )
    if m.shape != s.shape:
        raise ValueError(
            f"is_member must have the same shape as scores {s.shape}, got shape {m.shape}"
        )
    return s, m


def require_both_classes(
    is_member: np.ndarray,
    *,
    metric: str,
    why: str = "a threshold-free metric asked of a single-class set",
) -> tuple[int, int]:
    """Return ``(n_members, n_nonmembers)``; raise if either is zero.

    ROC, AUC, TPR@FPR and the advantage compare members with non-members, so they are undefined
    on a set holding one class only.
    """
    n_pos = int(np.count_nonzero(is_member))
    n_neg = int(is_member.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"{metric} needs at least one member and one non-member in is_member "
            f"({why}), got {n_pos} member(s) "
            f"and {n_neg} non-member(s)"
        )
    return n_pos, n_neg


def check_fpr_target(fpr: Any, *, name: str = "fpr") -> float:
    """Return ``fpr`` as a float in the open interval (0, 1), or raise naming ``name``."""
    return check_real(fpr, name=name, low=0.0, high=1.0, closed="neither")


def check_fpr_targets(fprs: Any, *, name: str = "fpr_targets") -> tuple[float, ...]:
    """Return a tuple of distinct FPR targets in (0, 1), in the order given, or raise."""
    out = check_reals(fprs, name=name, low=0.0, high=1.0, closed="neither")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat a target, got {list(out)}")
    return out


def check_threshold(threshold: Any, *, name: str = "threshold") -> float:
    """Return ``threshold`` as a float; +-inf are legal ("flag nobody" / "flag everybody")."""
    return check_real(threshold, name=name, finite=False)


def check_level(level: Any, *, name: str = "level") -> float:
    """Return a confidence level as a float in the open interval (0, 1)."""
    return check_real(level, name=name, low=0.0, high=1.0, closed="neither")


def check_n_bootstrap(n_bootstrap: Any, *, name: str = "n_bootstrap") -> int:
    """Return a number of bootstrap replicates as an int >= 1."""
    return check_int(n_bootstrap, name=name, low=1)


def check_priors(priors: Any, *, name: str = "priors") -> tuple[float, ...]:
    """Return member priors (fractions of members among those queried) as floats in (0, 1)."""
    return check_reals(priors, name=name, low=0.0, high=1.0, closed="neither")
