"""The Pareto front of (utility, attackability) points: pure Python, used by the defense
comparison and the figures that draw it."""

from __future__ import annotations

__all__ = ["pareto_front"]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(test_accuracy, worst_auc)`` no other point dominates (at least
    as accurate and at most as attackable, strictly better in one), sorted by accuracy."""
    front = []
    for i, (acc, auc) in enumerate(points):
        dominated = any((a >= acc and u <= auc) and (a > acc or u < auc)
                        for j, (a, u) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])
