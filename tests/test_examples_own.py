"""The "audit your own model" examples run as written, with their --quick settings.

The random-forest and label-only-API examples run in the default suite (each a few seconds
single-threaded); the PyTorch CNN example needs the Fashion-MNIST files and trains a CNN with
its shadows, so it is marked slow (``python -m pytest -m slow``) and skips without the files.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

import mialab

from _seeds import seeded

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _run(name: str, monkeypatch, capsys, tmp_path, *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), "--quick", *args])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def _results(run_dir: Path) -> dict:
    for name in ("config.json", "split.json", "results.json", "scores.csv", "summary.txt"):
        assert (run_dir / name).is_file(), run_dir / name
    return json.loads((run_dir / "results.json").read_text())


def test_random_forest_example(monkeypatch, capsys, tmp_path):
    printed = _run("audit_random_forest.py", monkeypatch, capsys, tmp_path, "--seed", str(seeded(0)))
    for text in ("mialab audit: digits-random-forest", "worst-case attack:", "most exposed records",
                 "shadow models: 2 clones of the forest", "lira-offline", "label-only"):
        assert text in printed, text
    saved = _results(tmp_path / "runs" / "audit-random-forest")
    assert saved["config"]["access"] == "probabilities" and saved["config"]["model_form"] == "sklearn"
    assert saved["shadows"]["n_models"] == 2
    assert saved["split_sizes"]["members"] == saved["split_sizes"]["nonmembers"] == 500
    assert saved["target"]["train_accuracy"] == 1.0  # a forest classifies its training set perfectly
    # the attacks that need no more than probabilities, all calibrated on the cloned shadows
    assert {"threshold", "loss", "shadow", "label-only", "lira-offline", "rmia-offline"} <= set(saved["attacks"])
    # a fully grown forest leaks: loss AUC over 12 seeds 0.802 mean, 0.012 SD, 0.784 min, 16
    # SDs above 0.6 (500 + 500 records; the one-sided p = 1e-4 null critical value is 0.571)
    assert saved["attacks"]["loss"]["auc"] > 0.6
    assert len(saved["most_exposed"][saved["worst_case"]["attack"]]) == 10


def test_label_only_api_example(monkeypatch, capsys, tmp_path):
    printed = _run("audit_label_only_api.py", monkeypatch, capsys, tmp_path)
    for text in ("1. labels only, no population", "2. with a population and look-alike models",
                 "correctness attack accuracy", "label-only attack: AUC", "queries sent to the API"):
        assert text in printed, text
    plain = _results(tmp_path / "runs" / "audit-label-only-api" / "no-population")
    shadowed = _results(tmp_path / "runs" / "audit-label-only-api" / "with-shadows")
    assert set(plain["attacks"]) == {"correctness"} and plain["shadows"]["n_models"] == 0
    assert set(shadowed["attacks"]) == {"correctness", "label-only"} and shadowed["shadows"]["n_models"] == 2
    for saved in (plain, shadowed):
        assert saved["config"]["access"] == "label" and saved["config"]["model_output"] == "labels"
    gap = plain["target"]["generalization_gap"]
    assert plain["attacks"]["correctness"]["accuracy"] == pytest.approx(0.5 + gap / 2)
    # the same rule on the same records gives the same answer with or without shadows
    assert shadowed["attacks"]["correctness"]["auc"] == plain["attacks"]["correctness"]["auc"]


@pytest.mark.slow
def test_pytorch_cnn_example(monkeypatch, capsys, tmp_path):
    try:
        mialab.load_dataset("fashion-mnist")
    except FileNotFoundError as err:
        pytest.skip(f"Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist): {err}")
    printed = _run("audit_pytorch_cnn.py", monkeypatch, capsys, tmp_path)
    for text in ("training the target CNN on 300", "mialab audit: fashion-mnist-own-cnn", "worst-case attack:",
                 "most exposed records"):
        assert text in printed, text
    saved = _results(tmp_path / "runs" / "audit-pytorch-cnn")
    assert saved["config"]["access"] == "logits" and saved["config"]["model_form"] == "torch"
    assert set(saved["attacks"]) == {"threshold", "loss", "shadow", "lira-offline", "rmia-offline", "label-only"}
    assert saved["shadows"]["n_models"] == 2
    assert saved["split_sizes"]["members"] == saved["split_sizes"]["nonmembers"] == 300
