"""AuditResults as a user meets it: load(run_dir) returns what save wrote, summary(), the Jupyter
view and the pandas exports.

One small real audit (digits, 2 shadows, 300 training records, 100 bootstrap replicates) serves
every test: a few seconds on one core. No assertion depends on the numbers it trained: each
compares the loaded or rendered object with the audit's own record.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import mialab
from mialab.metrics import evaluate
from mialab.report.tables import summary_table
from mialab.results import AuditResults

ATTACKS = ("loss", "shadow", "label-only")
# 60 non-members evaluated: 20% FPR is resolvable (needs 10 / 0.2 = 50), 1% is not (needs 1000),
# so both the number and the "<= bound" paths are exercised
FPR_TARGETS = (0.01, 0.2)


@pytest.fixture(scope="module")
def results() -> AuditResults:
    return mialab.audit("digits", seed=5, quiet=True, n_shadows=2, n_target_train=300, n_bootstrap=100,
                        attacks=ATTACKS, fpr_targets=FPR_TARGETS)


@pytest.fixture(scope="module")
def saved(results, tmp_path_factory) -> Path:
    return results.save(tmp_path_factory.mktemp("saved") / "run")


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit: dtype, shape and bytes (so -0.0/0.0 and +-inf count too)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _json(obj):
    return json.loads(json.dumps(obj, allow_nan=False))


def assert_equal_results(loaded: AuditResults, original: AuditResults) -> None:
    assert loaded.to_dict() == _json(original.to_dict())
    assert loaded.config == _json(original.config)
    for part in ("members", "train_rest", "validation", "nonmembers", "test", "pool", "reference"):
        assert _same_array(getattr(loaded.split, part), getattr(original.split, part)), part
    assert (loaded.split.n_records, loaded.split.seed) == (original.split.n_records, original.split.seed)
    for name in ("shadow_membership", "reference_membership"):
        a, b = getattr(loaded, name), getattr(original, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert _same_array(a.matrix, b.matrix) and _same_array(a.record_ids, b.record_ids), name
    for field in ("record_ids", "labels", "logits"):
        assert _same_array(getattr(loaded.target_outputs, field), getattr(original.target_outputs, field)), field
    assert [a.attack for a in loaded.attacks] == [a.attack for a in original.attacks]
    for a, b in zip(loaded.attacks, original.attacks):
        for field in ("record_ids", "labels", "scores", "is_member"):
            assert _same_array(getattr(a, field), getattr(b, field)), (a.attack, field)
        assert a.threshold == b.threshold and type(a.threshold) is float
        assert a.params == _json(b.params)
    assert list(loaded.metrics) == list(original.metrics)
    for name, m in loaded.metrics.items():
        o = original.metrics[name]
        for f in dataclasses.fields(m):
            x, y = getattr(m, f.name), getattr(o, f.name)
            if isinstance(y, np.ndarray):
                assert _same_array(x, y), (name, f.name)
            else:  # TprAtFpr / Ppv are frozen dataclasses compared by value; tuples stay tuples
                assert x == y and type(x) is type(y), (name, f.name, x, y)
    for f in ("dataset", "target", "shadows", "timings", "versions", "reference_models", "model_counts",
              "hardware", "defense_comparison", "warnings", "verdict", "gate"):
        assert getattr(loaded, f) == _json(getattr(original, f)), f


def test_load_returns_what_save_wrote(results, saved):
    assert_equal_results(AuditResults.load(saved), results)
    assert AuditResults.load(str(saved)).to_dict() == AuditResults.load(saved).to_dict()


def test_load_infinite_thresholds(results, tmp_path):
    # +inf flags nobody, -inf everybody: written as "inf"/"-inf" in results.json, read back as floats
    attacks = [dataclasses.replace(results.attacks[0], threshold=math.inf),
               dataclasses.replace(results.attacks[1], threshold=-math.inf), *results.attacks[2:]]
    metrics = dict(results.metrics)
    for a in attacks[:2]:
        metrics[a.attack] = evaluate(a, fpr_targets=FPR_TARGETS, n_bootstrap=50, seed=1)
    edited = dataclasses.replace(results, attacks=attacks, metrics=metrics)
    loaded = AuditResults.load(edited.save(tmp_path / "run"))
    assert_equal_results(loaded, edited)
    assert [a.threshold for a in loaded.attacks[:2]] == [math.inf, -math.inf]
    assert loaded.metrics[attacks[0].attack].ppv[0].ppv is None  # flags no one: PPV undefined, kept None


def test_load_run_directory(results, tmp_path):
    run = mialab.write_run(results, tmp_path / "run")
    assert (run / "manifest.json").is_file() and (run / "report.html").is_file()
    assert_equal_results(AuditResults.load(run), results)


@pytest.mark.parametrize("name", ["results.json", "config.json", "split.json", "scores.csv",
                                  "target_outputs.npz", "shadow_membership.npz"])
def test_load_missing_file_is_named(saved, tmp_path, name):
    run = Path(shutil.copytree(saved, tmp_path / "run"))
    (run / name).unlink()
    with pytest.raises(FileNotFoundError, match=name.replace(".", r"\.")):
        AuditResults.load(run)


def test_load_bad_paths(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AuditResults.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="is a file"):
        AuditResults.load(saved / "config.json")
    with pytest.raises(TypeError, match="run_dir"):
        AuditResults.load(3)


def _corrupt_cases():
    def not_json(run):
        (run / "results.json").write_text("{not json")

    def truncated_npz(run):
        data = (run / "target_outputs.npz").read_bytes()
        (run / "target_outputs.npz").write_bytes(data[: len(data) // 2])

    def renamed_column(run):
        path = run / "scores.csv"
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0].replace("shadow", "shadows")] + lines[1:]) + "\n")

    def other_config(run):
        cfg = json.loads((run / "config.json").read_text())
        cfg["seed"] += 1
        (run / "config.json").write_text(json.dumps(cfg))

    def swapped_scores(run):  # another run's scores: the most exposed records no longer match
        path = run / "scores.csv"
        head, *rows = path.read_text().splitlines()
        cols = [r.split(",") for r in rows]
        scores = [c[3] for c in cols][::-1]
        path.write_text("\n".join([head] + [",".join(c[:3] + [s] + c[4:]) for c, s in zip(cols, scores)]) + "\n")

    def bad_split(run):
        split = json.loads((run / "split.json").read_text())
        split["nonmembers"] = split["members"]
        (run / "split.json").write_text(json.dumps(split))

    def metric_key_missing(run):
        doc = json.loads((run / "results.json").read_text())
        del doc["attacks"]["loss"]["roc"]
        (run / "results.json").write_text(json.dumps(doc))

    return [("results.json", not_json), ("target_outputs.npz", truncated_npz), ("scores.csv", renamed_column),
            ("config.json", other_config), ("most_exposed", swapped_scores), ("split.json", bad_split),
            ("results.json", metric_key_missing)]


@pytest.mark.parametrize("named, corrupt", _corrupt_cases(), ids=lambda c: getattr(c, "__name__", c))
def test_load_corrupt_file_is_named(saved, tmp_path, named, corrupt):
    run = Path(shutil.copytree(saved, tmp_path / "run"))
    corrupt(run)
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        AuditResults.load(run)


def test_summary_is_the_printed_table(results):
    with pytest.warns(DeprecationWarning, match=r"use results.summary\(\)") as record:
        old = summary_table(results)
    assert old == results.summary() and record[0].filename == __file__
    text = results.summary()
    assert text.splitlines()[0].startswith("mialab audit: digits") and "worst case:" in text


class _Cells(HTMLParser):
    """Table rows of the HTML (a list of cell texts each), failing on unbalanced tags."""

    def __init__(self):
        super().__init__()
        self.rows, self.stack, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.text = []

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag, f"unbalanced </{tag}>"
        if tag in ("td", "th"):
            self.rows[-1].append("".join(self.text))

    def handle_data(self, data):
        self.text.append(data)


def test_repr_html_table(results):
    page = results._repr_html_()
    parser = _Cells()
    parser.feed(page)
    assert parser.stack == []
    header, *rows = parser.rows
    assert header == ["attack", "AUC [95% CI]", "TPR@1% FPR", "TPR@20% FPR"]
    assert [r[0] for r in rows] == list(results.metrics)
    for row, m in zip(rows, results.metrics.values()):
        assert row[1] == f"{m.auc:.3f} [{m.auc_interval[0]:.3f}, {m.auc_interval[1]:.3f}]"
        low, high = m.tpr_at(0.01), m.tpr_at(0.2)
        assert not low.resolvable and high.resolvable  # by the choice of FPR_TARGETS
        assert row[2] == f"<= {100 * low.interval[1]:.1f}%*"  # a bound, unescaped by the parser
        assert row[3] == f"{100 * high.tpr:.1f}%"
    lo, hi = results.verdict["auc"]["corrected"]
    assert f"[{lo:.3f}, {hi:.3f}]" in page
    assert ("LEAKS" in page) == results.leaks and "digits" in page and "mlp" in page


def test_repr_html_escapes(results):
    evil = "<script>alert(1)</script>"
    edited = dataclasses.replace(results, dataset={**results.dataset, "name": evil},
                                 warnings=["a & b < c"])
    page = edited._repr_html_()
    assert evil not in page and html.escape(evil) in page and "a &amp; b &lt; c" in page


def test_frames_need_pandas(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    for method in (results.metrics_frame, results.scores_frame):
        with pytest.raises(ImportError, match="pip install pandas"):
            method()


def test_metrics_frame(results):
    pytest.importorskip("pandas", reason="pandas is an optional extra; the frames need it")
    frame = results.metrics_frame()
    assert list(frame.index) == list(results.metrics)
    for name, m in results.metrics.items():
        row = frame.loc[name]
        assert (row["auc"], row["auc_low"], row["auc_high"]) == (m.auc, *m.auc_interval)
        assert row["threshold"] == m.threshold and row["advantage"] == m.advantage
        low, high = m.tpr_at(0.01), m.tpr_at(0.2)
        assert math.isnan(row["tpr_at_fpr_0.01"]) and row["tpr_at_fpr_0.01_high"] == low.interval[1]
        assert not row["tpr_at_fpr_0.01_resolvable"] and row["tpr_at_fpr_0.2_resolvable"]
        assert row["tpr_at_fpr_0.2"] == high.tpr
        for p in m.ppv:
            value = row[f"ppv_at_prior_{p.prior!r}"]
            assert math.isnan(value) if p.ppv is None else value == p.ppv


def test_scores_frame(results):
    pytest.importorskip("pandas", reason="pandas is an optional extra; the frames need it")
    frame = results.scores_frame()
    assert list(frame.columns) == ["record_id", "label", "is_member", *ATTACKS]
    first = results.attacks[0]
    assert _same_array(frame["record_id"].to_numpy(), first.record_ids)
    assert _same_array(frame["is_member"].to_numpy(), first.is_member)
    for a in results.attacks:
        assert _same_array(frame[a.attack].to_numpy(), a.scores)
