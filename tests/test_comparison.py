"""Defense comparison and recommendations."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mialab
from mialab import TrainConfig
from mialab.comparison import DefenseComparison, recommend

TINY = dict(n_shadows=2, n_bootstrap=100, training=TrainConfig(epochs=5, batch_size=64))


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    c = mialab.compare_defenses(["l2", "top-1"], attacks=["loss"], quiet=True, out=out, **TINY)
    return c, out


def test_rows_baseline_first_and_label_only_always_attacks(comparison):
    c, out = comparison
    assert [r["candidate"] for r in c.rows] == ["none", "l2", "top-1"]
    for r in c.rows:
        assert set(r["attacks"]) == {"loss", "label-only"}  # label-only added to every candidate
    base, l2 = c.row("none"), c.row("l2")
    assert base["utility_cost"] == 0.0 and base["effectiveness"] is None
    assert l2["utility_cost"] == pytest.approx(base["test_accuracy"] - l2["test_accuracy"])
    expected = 1 - (l2["worst_auc"] - 0.5) / (base["worst_auc"] - 0.5)
    assert l2["effectiveness"] == pytest.approx(expected)
    assert l2["worst_auc"] == max(a["auc"] for a in l2["attacks"].values())
    # masking keeps the target model: same test accuracy as undefended
    assert c.row("top-1")["test_accuracy"] == base["test_accuracy"]
    data = json.loads((out / "comparison.json").read_text())
    assert [r["candidate"] for r in data["rows"]] == ["none", "l2", "top-1"]
    assert (out / "none" / "results.json").is_file() and (out / "l2" / "results.json").is_file()
    assert "worst attack" in c.table()
    # the comparison's own report: the baseline audit with the comparison, rendered
    doc = json.loads((out / "results.json").read_text())
    assert doc["defense_comparison"]["rows"] == data["rows"] and doc["worst_case"]["auc"] == base["worst_auc"]
    assert "## Defense comparison" in (out / "report.md").read_text() and (out / "report.html").is_file()


def _fake(rows):
    base = {"candidate": "none", "test_accuracy": 0.9, "utility_cost": 0.0, "worst_auc": 0.70,
            "worst_auc_interval": [0.65, 0.75], "worst_attack": "loss"}
    return DefenseComparison(rows=[base] + [{"worst_attack": "loss", **r} for r in rows])


def test_recommend_ranks_by_gain_per_point_and_respects_constraints():
    c = _fake([
        {"candidate": "a", "test_accuracy": 0.80, "utility_cost": 0.10, "worst_auc": 0.52, "worst_auc_interval": [0.5, 0.55]},
        {"candidate": "b", "test_accuracy": 0.89, "utility_cost": 0.01, "worst_auc": 0.60, "worst_auc_interval": [0.55, 0.66]},
        {"candidate": "c", "test_accuracy": 0.90, "utility_cost": 0.00, "worst_auc": 0.72, "worst_auc_interval": [0.67, 0.77]},
    ])
    ranked, verdict = recommend(c, max_utility_drop=0.2)
    assert [r.candidate for r in ranked] == ["b", "a"]  # 0.10 AUC per point vs 0.018; c does not help
    assert ranked[0].gain_per_point == pytest.approx(0.10 / 1.0)
    assert verdict.startswith("Recommended: b")
    assert [r.candidate for r in recommend(c, max_utility_drop=0.05)[0]] == ["b"]
    assert [r.candidate for r in recommend(c, max_utility_drop=0.2, target_auc=0.55)[0]] == ["a"]
    none, verdict = recommend(c, max_utility_drop=0.0)
    assert none == [] and verdict.startswith("No candidate")


def test_recommendation_says_when_the_reduction_is_within_noise():
    c = _fake([{"candidate": "n", "test_accuracy": 0.9, "utility_cost": 0.0, "worst_auc": 0.68,
                "worst_auc_interval": [0.62, 0.74]}])
    (rec,), verdict = recommend(c)
    assert "within noise" in rec.reason
    assert verdict.startswith("Inconclusive: no candidate lowered the worst-case AUC beyond noise")


def test_bad_comparison_requests_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        mialab.compare_defenses(["l3"], quiet=True)
    with pytest.raises(TypeError, match="string"):
        mialab.compare_defenses("l2", quiet=True)
    with pytest.raises(ValueError, match="reserved"):
        mialab.compare_defenses({"none": {"defenses": []}}, quiet=True)
    with pytest.raises(ValueError, match="n_validation"):
        mialab.compare_defenses(["early-stopping"], quiet=True)
    with pytest.raises(ValueError, match="max_utility_drop"):
        recommend(_fake([]), max_utility_drop=2)
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['learning_rate'\]"):
        mialab.compare_defenses({"dp": {"training": {"learning_rate": 0.1}}}, quiet=True)
    with pytest.raises(ValueError, match="batch_size"):
        mialab.compare_defenses({"dp": {"training": {"batch_size": 0}}}, quiet=True)


def test_a_candidate_can_change_the_training_recipe():
    c = mialab.compare_defenses({"big-batch": {"training": {"batch_size": 128, "lr": 3e-3}}},
                                attacks=["loss"], quiet=True, **TINY)
    row = c.row("big-batch")
    assert row["training"]["batch_size"] == 128 and row["training"]["lr"] == 3e-3
    assert c.row("none")["training"]["batch_size"] == 64
    assert c.results["big-batch"].config["training"]["epochs"] == 5  # the rest of the base recipe is kept
    # the same evaluated records, a different model
    np.testing.assert_array_equal(c.results["big-batch"].split.members, c.results["none"].split.members)
    # compared on outputs: two different models can share accuracies (a float-rounding coincidence)
    assert not np.allclose(c.results["big-batch"].target_outputs.logits, c.results["none"].target_outputs.logits)


def test_pareto_front_against_brute_force():
    import numpy as np

    from mialab.report import pareto_front

    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [tuple(p) for p in np.round(rng.random((8, 2)), 1)]
        front = set(pareto_front(pts))
        for i, (a, u) in enumerate(pts):
            dominated = any(b >= a and v <= u and (b, v) != (a, u) for b, v in pts)
            assert (i in front) == (not dominated)


def test_comparison_writes_the_tradeoff_plot(comparison):
    _, out = comparison
    assert (out / "tradeoff.png").stat().st_size > 1000
