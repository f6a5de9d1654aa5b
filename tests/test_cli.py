"""The command line: flags and TOML become the same AuditConfig; errors exit 2 with a message."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mialab.cli import build_parser, config_from_args, main

REPO = Path(__file__).resolve().parents[1]


def test_flags_override_toml(tmp_path):
    toml = tmp_path / "audit.toml"
    toml.write_text('dataset = "digits"\nseed = 4\nattacks = ["loss", "shadow"]\nn_shadows = 3\n'
                    '[training]\nepochs = 7\nlr = 0.01\n[model_params]\nwidth = 32\n')
    args = build_parser().parse_args(["audit", "--config", str(toml), "--seed", "5", "--epochs", "9",
                                      "--attacks", "loss,label-only"])
    cfg = config_from_args(args)
    assert (cfg.seed, cfg.n_shadows, cfg.training.epochs, cfg.training.lr) == (5, 3, 9, 0.01)
    assert cfg.attacks == ("loss", "label-only")
    assert dict(cfg.model_params) == {"width": 32}


def test_unknown_toml_key_is_refused(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("n_shadowz = 3\n")
    with pytest.raises(ValueError, match="n_shadowz"):
        config_from_args(build_parser().parse_args(["audit", "--config", str(toml)]))


def test_cli_audit_writes_run_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["audit", "--attacks", "loss,correctness", "--shadows", "2", "--epochs", "3",
               "--bootstrap", "50", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "AUC [95% CI]" in printed and "worst case" in printed
    data = json.loads((out / "results.json").read_text())
    # the default audit compares the cheap defenses, so label-only joins the attacks
    assert set(data["attacks"]) == {"loss", "correctness", "label-only"}
    rows = data["defense_comparison"]["rows"]
    assert [r["candidate"] for r in rows] == ["none", "l2", "label-smoothing", "top-1"]
    assert rows[0]["worst_auc"] == data["worst_case"]["auc"]  # the baseline is this very audit
    assert data["defense_comparison"]["recommendation"]["verdict"] in printed
    assert (out / "report.html").is_file() and (out / "report.md").is_file() and (out / "tradeoff.png").is_file()
    assert sorted(p.name for p in (out / "defenses").iterdir() if p.is_dir()) == ["l2", "label-smoothing", "top-1"]


def test_cli_audit_without_defenses_and_refusals(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["audit", "--attacks", "loss", "--shadows", "2", "--epochs", "2", "--bootstrap", "50",
                 "--out", str(out), "--quiet", "--no-defenses"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["defense_comparison"] is None and set(data["attacks"]) == {"loss"}
    assert "No defenses were compared" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["audit", "--defenses", "l2,nonsense", "--quiet"]) == 2
    assert "nonsense" in capsys.readouterr().err
    toml = tmp_path / "defended.toml"
    toml.write_text('output_mask = {name = "top-k", k = 1}\n')
    assert main(["audit", "--config", str(toml), "--defenses", "l2", "--quiet"]) == 2
    assert "already applies defenses" in capsys.readouterr().err
    # bad recommendation constraints are refused before anything is trained
    for flag, value in (("--max-utility-drop", "5"), ("--target-auc", "0.4")):
        assert main(["audit", flag, value, "--out", str(tmp_path / "never"), "--quiet"]) == 2
        assert flag.strip("-").replace("-", "_") in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_cli_errors_exit_2_with_message(capsys):
    assert main(["audit", "--attacks", "loss,bogus", "--quiet"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["audit", "--dataset", "nope", "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err


def test_python_dash_m_and_list():
    out = subprocess.run([sys.executable, "-m", "mialab", "list"], capture_output=True, text=True, check=True)
    assert "label-only" in out.stdout and "fashion-mnist" in out.stdout


def test_ci_runs_the_readme_test_command():
    """.ci/run must run exactly the test command README.md gives."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    command = match.group(1).strip()
    assert command in (REPO / ".ci" / "run").read_text()


def test_cli_audits_a_csv_file(tmp_path, capsys):
    from sklearn.datasets import load_digits

    d = load_digits()
    path = tmp_path / "digits.csv"
    header = ",".join(f"px{i}" for i in range(64)) + ",digit"
    rows = [",".join(f"{v / 16:.4f}" for v in x) + f",d{t}" for x, t in zip(d.data, d.target)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["audit", "--csv", str(path), "--label-column", "digit", "--attacks", "loss",
                 "--shadows", "2", "--epochs", "2", "--bootstrap", "50", "--out", str(out), "--quiet",
                 "--defenses", "top-1", "--class-names"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [r["candidate"] for r in data["defense_comparison"]["rows"]] == ["none", "top-1"]
    assert data["dataset"]["name"] == "digits" and data["dataset"]["n_classes"] == 10
    assert "csv" in data["dataset"]["source"] or str(path) in data["dataset"]["source"]
    assert main(["audit", "--csv", str(path), "--quiet"]) != 0  # --label-column is required with --csv


def test_cli_defend_compares_and_recommends(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["defend", "--candidates", "l2,top-1", "--attacks", "loss", "--shadows", "2", "--epochs", "3",
               "--bootstrap", "50", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    verdict = json.loads((out / "results.json").read_text())["defense_comparison"]["recommendation"]["verdict"]
    assert "worst attack" in printed and verdict in printed
    assert verdict.startswith(("Recommended", "No candidate", "Inconclusive"))
    data = json.loads((out / "defenses" / "comparison.json").read_text())
    assert [r["candidate"] for r in data["rows"]] == ["none", "l2", "top-1"]
    assert json.loads((out / "results.json").read_text())["defense_comparison"]["rows"] == data["rows"]
    assert main(["defend", "--candidates", "l3", "--quiet"]) == 2


def test_progress_and_logs_unless_quiet(tmp_path, capfd, caplog):
    import logging

    args = ["audit", "--attacks", "loss,label-only", "--shadows", "2", "--epochs", "2", "--bootstrap", "20",
            "--no-defenses"]
    with caplog.at_level(logging.INFO, logger="mialab"):
        assert main(args + ["--out", str(tmp_path / "a")]) == 0
    err = capfd.readouterr().err
    assert "target model (epochs)" in err and "shadow models" in err  # tqdm bars, with rates and time left
    assert "label-only: querying 2 attacker-side models" in err and "<" in err
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("mialab")]
    assert any(m.startswith("attack label-only: AUC") for m in messages)
    assert any(m.startswith("training 2 shadow models") for m in messages)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mialab"):
        assert main(args + ["--out", str(tmp_path / "b"), "--quiet"]) == 0
    err = capfd.readouterr().err
    assert "shadow models" not in err and "querying" not in err
    assert [r for r in caplog.records if r.name.startswith("mialab") and r.levelno < logging.WARNING] == []
