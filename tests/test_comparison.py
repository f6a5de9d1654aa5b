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


def _paired(candidate, test_accuracy, worst_auc, interval, reduction_interval, *, paired=True):
    """A fake candidate row with its paired reduction of the worst-case AUC (baseline 0.70)."""
    return {"candidate": candidate, "test_accuracy": test_accuracy, "utility_cost": round(0.9 - test_accuracy, 10),
            "worst_auc": worst_auc, "worst_auc_interval": interval, "auc_reduction": round(0.70 - worst_auc, 10),
            "auc_reduction_interval": reduction_interval, "defense_works": reduction_interval[0] > 0, "paired": paired}


def test_the_issues_reproducible_case_recommends_the_candidate_beyond_noise():
    """Issue 12: baseline worst AUC 0.70; a: 0.66 [0.60, 0.72] at no cost; b: 0.55 [0.50, 0.60]
    for 3 points (within the 5-point budget). a has the larger gain per point (0.04 / 0.5 =
    0.08 against 0.15 / 3 = 0.05) but its reduction is noise; b's is not, so b is recommended."""
    c = _fake([_paired("a", 0.90, 0.66, [0.60, 0.72], [-0.02, 0.10]),
               _paired("b", 0.87, 0.55, [0.50, 0.60], [0.09, 0.21])])
    ranked, verdict = recommend(c)  # default budget: 5 points
    assert [r.candidate for r in ranked] == ["b", "a"]
    assert [r.beyond_noise for r in ranked] == [True, False]
    assert ranked[0].gain_per_point == pytest.approx(0.15 / 3) and ranked[1].gain_per_point == pytest.approx(0.04 / 0.5)
    assert verdict.startswith("Recommended: b: worst-case AUC 0.700 -> 0.550 [0.500, 0.600]")
    assert "paired interval [0.090, 0.210], beyond noise" in verdict
    assert verdict.endswith("Within noise, not recommended: a.")
    assert "within noise" in ranked[1].reason and "[-0.020, 0.100]" in ranked[1].reason
    # rows made before the paired intervals: b's own interval lies below 0.70, a's does not
    old = _fake([{k: v for k, v in r.items() if k not in ("auc_reduction", "auc_reduction_interval", "paired")}
                 for r in c.rows[1:]])
    ranked, verdict = recommend(old)
    assert [r.candidate for r in ranked] == ["b", "a"] and verdict.startswith("Recommended: b")
    # without b's budget only noise is left: inconclusive, naming the best measured
    ranked, verdict = recommend(c, max_utility_drop=0.02)
    assert [r.candidate for r in ranked] == ["a"]
    assert verdict.startswith("Inconclusive: no candidate lowered the worst-case AUC beyond noise; "
                              "the best measured is a:")
    summary = c.summary()["recommendation"]
    assert [r["beyond_noise"] for r in summary["ranked"]] == [True, False] and "noise" in summary["rule"]
    assert summary["ranked"][0]["auc_reduction_interval"] == [0.09, 0.21]


def test_the_best_candidate_need_not_be_the_cheapest():
    """cheap: free but a small reduction (0.02 / 0.5 = 0.04 per point); mid: 0.15 for one point
    (0.15 per point); dear: 0.20 for four points (0.05 per point). All beyond noise: mid first."""
    c = _fake([_paired("cheap", 0.90, 0.68, [0.63, 0.73], [0.005, 0.035]),
               _paired("mid", 0.89, 0.55, [0.50, 0.60], [0.10, 0.20]),
               _paired("dear", 0.86, 0.50, [0.45, 0.55], [0.15, 0.25])])
    ranked, verdict = recommend(c)
    assert [r.candidate for r in ranked] == ["mid", "dear", "cheap"] and all(r.beyond_noise for r in ranked)
    assert verdict.startswith("Recommended: mid") and "Within noise" not in verdict
    assert [r.candidate for r in recommend(c, max_utility_drop=0.005)[0]] == ["cheap"]
    assert [r.candidate for r in recommend(c, target_auc=0.52)[0]] == ["dear"]
    # an unpaired interval (other evaluated records) says so
    c = _fake([_paired("moved", 0.89, 0.55, [0.50, 0.60], [0.05, 0.25], paired=False)])
    (rec,), verdict = recommend(c)
    assert "unpaired interval [0.050, 0.250]" in rec.reason and verdict.startswith("Recommended: moved")


def test_rows_carry_corrected_intervals_and_paired_reductions(comparison):
    c, _ = comparison
    base = c.row("none")
    assert base["auc_reduction"] is None and base["defense_works"] is None and base["paired"] is None
    for r in c.rows:
        lo, hi = r["worst_auc_corrected_interval"]
        assert lo <= r["worst_auc_interval"][0] and hi >= r["worst_auc_interval"][1]  # never narrower
        assert r["leaks"] == (lo > 0.5)
        no_1pct = 0.01 not in c.results["none"].config["fpr_targets"]
        assert (r["worst_tpr_at_1pct_corrected_interval"] is None) == no_1pct
    for name in ("l2", "top-1"):
        r = c.row(name)
        assert r["paired"] is True and r["auc_reduction"] == pytest.approx(base["worst_auc"] - r["worst_auc"])
        lo, hi = r["auc_reduction_interval"]
        assert lo <= hi and r["defense_works"] == (lo > 0)
    assert c.differences["paired"] and set(c.differences["candidates"]) == {"l2", "top-1"}
    assert json.loads(json.dumps(c.summary(), allow_nan=False))["differences"] == c.differences
    assert "AUC cut" in c.table()


def test_rows_pair_by_record_id_and_fall_back_to_unpaired_on_other_records(comparison):
    import dataclasses

    from mialab.comparison import _rows

    c, _ = comparison
    rows, diffs = _rows(c.results)
    assert rows == c.rows and diffs == c.differences  # same seed, same numbers

    def remap(res, ids_of):
        return dataclasses.replace(res, attacks=[dataclasses.replace(a, record_ids=ids_of(a)) for a in res.attacks])

    def permute(res, perm):
        return dataclasses.replace(res, attacks=[
            dataclasses.replace(a, record_ids=a.record_ids[perm], labels=a.labels[perm], scores=a.scores[perm],
                                is_member=a.is_member[perm]) for a in res.attacks])

    perm = np.random.default_rng(0).permutation(c.results["l2"].attacks[0].record_ids.size)
    shuffled = {**c.results, "l2": permute(c.results["l2"], perm)}
    rows2, diffs2 = _rows(shuffled)
    assert diffs2 == diffs  # paired by record id, whatever the order the audit kept
    assert [r["auc_reduction_interval"] for r in rows2] == [r["auc_reduction_interval"] for r in rows]
    moved = {**c.results, "l2": remap(c.results["l2"], lambda a: a.record_ids + 10**6)}
    rows3, diffs3 = _rows(moved)
    assert diffs3["paired"] is False and rows3[1]["paired"] is False and "unpaired" in diffs3["method"]
    assert rows3[1]["auc_reduction"] == pytest.approx(rows[1]["auc_reduction"])


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


def test_repr_html_is_a_compact_escaped_table_with_the_verdict():
    import html.parser

    c = _fake([_paired("<b>a&b</b>", 0.90, 0.66, [0.60, 0.72], [-0.02, 0.10]),
               _paired("b", 0.87, 0.55, [0.50, 0.60], [0.09, 0.21], paired=False)])
    c.rows[0]["worst_auc_corrected_interval"] = [0.64, 0.76]
    c.rows[2]["worst_attack"] = 'x"<script>'
    out = c._repr_html_()

    class Cells(html.parser.HTMLParser):  # a parser as the notebook's: tags and text per cell
        def __init__(self):
            super().__init__()
            self.tags, self.rows, self.p = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.rows[-1].append("")

        def handle_data(self, data):
            if self.tags and self.tags[-1] in ("td", "th") and self.rows:
                self.rows[-1][-1] += data
            elif self.tags and self.tags[-1] == "p":
                self.p.append(data)

    parsed = Cells()
    parsed.feed(out)
    parsed.close()
    # the only tags are the table's own: a row's text never becomes markup
    assert set(parsed.tags) == {"div", "table", "thead", "tbody", "tr", "th", "td", "p"}
    assert "<b>" not in out and "<script>" not in out and "&lt;b&gt;a&amp;b&lt;/b&gt;" in out
    header, *rows = parsed.rows
    assert header == ["candidate", "test acc.", "utility cost", "worst attack", "worst AUC [95% CI]",
                      "AUC cut [paired CI]", "defense"]
    assert rows == [
        ["none", "90.0%", "0.0 pts", "loss", "0.700 [0.640, 0.760]", "", ""],  # the corrected interval
        ["<b>a&b</b>", "90.0%", "0.0 pts", "loss", "0.660 [0.600, 0.720]", "+0.040 [-0.020, +0.100]",
         "within noise"],
        ["b", "87.0%", "3.0 pts", 'x"<script>', "0.550 [0.500, 0.600]", "+0.150 [+0.090, +0.210]*", "works"],
    ]
    # notes: what the intervals are (with the unpaired mark), then summary()'s verdict, verbatim
    assert len(parsed.p) == 2 and "* unpaired" in parsed.p[0]
    assert parsed.p[1] == c.summary()["recommendation"]["verdict"] and parsed.p[1].startswith("Recommended: b")
