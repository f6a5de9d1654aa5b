"""Run directories: `--out` / `out=` checked before anything trains, written whole or not at all,
replaced only with `--overwrite` / `overwrite=True`; `mialab report` refuses incomplete runs and
results.json files that do not follow the schema; the Markdown report escapes user strings."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import mialab
import mialab.cli
from mialab.report import check_run_dir, render_report, write_run
from mialab.report.rundir import check_complete
from mialab.report.schema import describe, validate
from mialab.training import TrainConfig

TINY = dict(attacks=("loss",), n_shadows=2, n_target_train=200, n_bootstrap=20, training=TrainConfig(epochs=2))
CLI_TINY = ["--shadows", "2", "--epochs", "2", "--n-target-train", "200", "--attacks", "loss", "--bootstrap", "20",
            "--quiet"]


@pytest.fixture(scope="module")
def res():
    return mialab.audit("digits", seed=0, quiet=True, **TINY)


@pytest.fixture(scope="module")
def run_dir(res, tmp_path_factory):
    out = tmp_path_factory.mktemp("rundir") / "run"
    write_run(res, out)
    return out


@pytest.fixture
def no_training(monkeypatch):
    """Any training or auditing fails the test: a refusal must come before it."""
    import mialab.api

    def forbidden(*args, **kwargs):
        raise AssertionError("trained or audited before the refusal")

    for name in ("train_target", "train_shadows", "attack_all"):
        monkeypatch.setattr(sys.modules["mialab.pipeline.compose"], name, forbidden)
    monkeypatch.setattr(sys.modules["mialab.comparison"], "run_audit", forbidden)
    for name in ("run_audit", "run_model_audit", "run_comparison"):
        monkeypatch.setattr(sys.modules["mialab.api"], name, forbidden)


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def siblings(d: Path) -> list[str]:
    """Hidden leftovers next to ``d`` (temporary or previous run directories)."""
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- --out / out= checked before any training --------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["audit", "--no-defenses"],
    ["audit"],  # with the default defense comparison: before the baseline and any candidate train
    ["defend", "--candidates", "l2,top-1"],
])
def test_cli_out_that_is_a_file_is_refused_before_training(command, tmp_path, capsys, no_training):
    f = tmp_path / "f"
    f.touch()
    assert mialab.cli.main(command + CLI_TINY + ["--out", str(f)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"mialab {command[0]}: error: --out must be a run directory, but {f} is an existing file")
    assert f.read_bytes() == b""


def test_cli_audit_model_out_that_is_a_file_is_refused_before_loading(tmp_path, capsys):
    f = tmp_path / "f"
    f.touch()
    # neither file exists: the --out check comes first, before any model or data is loaded
    assert mialab.cli.main(["audit-model", "--sklearn", str(tmp_path / "m.skops"), "--data", str(tmp_path / "d.npz"),
                            "--out", str(f), "--quiet"]) == 2
    assert "error: --out must be a run directory, but" in one_line(capsys.readouterr().err)


def test_python_out_that_is_a_file_is_refused_before_training(res, tmp_path, no_training):
    f = tmp_path / "f"
    f.touch()
    with pytest.raises(ValueError, match=r"^out must be a run directory, but .* is an existing file"):
        mialab.audit("digits", out=f, quiet=True, **TINY)
    with pytest.raises(ValueError, match=r"^out must be a run directory"):
        mialab.compare_defenses(["top-1"], out=f, quiet=True, **TINY)
    with pytest.raises(ValueError, match=r"^out must be a run directory"):
        write_run(res, f)
    with pytest.raises(ValueError, match=r"^out .* cannot be created: .* is a file, not a directory"):
        mialab.audit("digits", out=f / "run", quiet=True, **TINY)
    assert f.read_bytes() == b""


def test_audit_model_out_that_is_a_file_is_refused_first(tmp_path):
    """audit_model checks ``out`` before it looks at the model (mialab/pipeline/own_model.py)."""
    f = tmp_path / "f"
    f.touch()
    X, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"^out must be a run directory, but .* is an existing file"):
        mialab.audit_model(object(), (X, y), (X + 1, y), out=f)


def test_check_run_dir_creates_nothing_and_names_the_problem(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b" / "run"
    assert check_run_dir(target) == target and not (tmp_path / "a").exists()
    (tmp_path / "empty").mkdir()
    assert check_run_dir(tmp_path / "empty") == tmp_path / "empty"  # an empty directory is fine
    with pytest.raises(TypeError, match=r"overwrite must be a bool, got 'yes' \(str\)"):
        check_run_dir(target, overwrite="yes")
    with pytest.raises(TypeError, match="out must be a directory path"):
        check_run_dir(3)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="not the current directory"):
        check_run_dir(".")
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match=r"^out .*locked/run cannot be created: no permission"):
                check_run_dir(locked / "run")
        finally:
            locked.chmod(0o700)


# -- refuse or replace whole ---------------------------------------------------------------------------
def test_existing_run_is_refused_unless_overwrite_which_replaces_it_whole(res, run_dir, tmp_path, capsys,
                                                                          no_training):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    with pytest.raises(ValueError, match=r"already exists and is not empty; pass overwrite=True"):
        write_run(res, d)
    assert mialab.cli.main(["audit", "--no-defenses"] + CLI_TINY + ["--out", str(d)]) == 2
    assert "--out " + str(d) + " already exists and is not empty; pass --overwrite" in one_line(capsys.readouterr().err)
    # a stale file of an earlier run (e.g. one with reference models) must not survive a replacement
    (d / "reference_membership.npz").write_bytes(b"stale")
    (d / "defenses").mkdir()
    (d / "defenses" / "old.txt").write_text("stale")
    write_run(res, d, overwrite=True)
    assert snapshot(d).keys() == snapshot(run_dir).keys()
    assert not (d / "reference_membership.npz").exists() and not (d / "defenses").exists()
    assert siblings(d) == []
    render_report(d)


def test_overwrite_never_replaces_a_directory_that_is_not_a_run(res, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"not a mialab run directory .*only replaces run directories"):
        write_run(res, d, overwrite=True)
    assert (d / "notes.txt").read_text() == "keep me" and siblings(d) == []


def test_interrupted_write_keeps_the_previous_run_and_leaves_nothing_behind(res, run_dir, tmp_path, monkeypatch):
    import mialab.report.writer as writer

    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    before = snapshot(d)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "plot_distributions", interrupt)  # after results.json, before the report
    with pytest.raises(KeyboardInterrupt):
        write_run(res, d, overwrite=True)
    assert snapshot(d) == before and siblings(d) == []
    new = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        write_run(res, new)
    assert not new.exists() and siblings(new) == []


def test_interrupted_comparison_leaves_no_directory(res, tmp_path, monkeypatch):
    calls = []

    def audit_then_interrupt(*args, **kwargs):
        calls.append(kwargs.get("out"))
        if len(calls) == 2:  # the baseline is done, the first candidate is interrupted
            raise KeyboardInterrupt
        return res

    monkeypatch.setattr(sys.modules["mialab.comparison"], "run_audit", audit_then_interrupt)
    out = tmp_path / "cmp"
    with pytest.raises(KeyboardInterrupt):
        mialab.compare_defenses(["l2", "top-1"], out=out, quiet=True, **TINY)
    assert calls == [None, None]  # candidates are not written as they finish
    assert not out.exists() and siblings(out) == []


def test_comparison_directory_and_each_candidate_are_complete_runs(res, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["mialab.comparison"], "run_audit", lambda *a, **k: res)  # no training
    out = tmp_path / "cmp"
    mialab.compare_defenses(["top-1"], out=out, quiet=True, **TINY)
    for d in (out, out / "none", out / "top-1"):
        manifest = check_complete(d)  # what `mialab report` checks first (rendering: tests above)
        assert manifest["complete"] is True and all((d / f).is_file() for f in manifest["files"])
        assert "results.json" in manifest["files"] and "report.md" in manifest["files"]
    assert json.loads((out / "manifest.json").read_text())["subdirectories"] == ["none", "top-1"]
    for png in re.findall(r"\]\(([^)]+\.png)\)", (out / "report.md").read_text()):
        assert (out / png).is_file(), png  # the comparison's report links only figures it has
    with pytest.raises(ValueError, match="already exists and is not empty; pass overwrite=True"):
        mialab.compare_defenses(["top-1"], out=out, quiet=True, **TINY)
    assert siblings(out) == []


# -- mialab report: complete runs, valid results.json ---------------------------------------------------
def test_report_refuses_an_incomplete_run(run_dir, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    (d / "roc.png").unlink()
    assert mialab.cli.main(["report", str(d)]) == 2
    assert "is incomplete: manifest.json lists files that are missing: ['roc.png']" in one_line(
        capsys.readouterr().err)
    (d / "manifest.json").unlink()
    assert mialab.cli.main(["report", str(d)]) == 2
    assert "is not a complete run directory: it has no manifest.json" in one_line(capsys.readouterr().err)
    partial = tmp_path / f".run.partial-{os.getpid()}"
    shutil.copytree(run_dir, partial)
    assert mialab.cli.main(["report", str(partial)]) == 2
    assert "temporary directory of an interrupted or unfinished run" in one_line(capsys.readouterr().err)
    assert mialab.cli.main(["report", str(run_dir / "results.json")]) == 2
    assert "is a file" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("target"), "results.json /target: missing (expected an object)"),
    (lambda d: d["attacks"]["loss"].__setitem__("auc", "0.7"),
     "results.json /attacks/loss/auc: expected a number in [0, 1], got the string '0.7'"),
    (lambda d: d["attacks"]["loss"]["tpr_at_fpr"][1].pop("resolvable"),
     "results.json /attacks/loss/tpr_at_fpr/1/resolvable: missing (expected true or false)"),
    (lambda d: d["dataset"].__setitem__("n_records", 1.5),
     "results.json /dataset/n_records: expected an integer >= 0, got the number 1.5"),
    (lambda d: d["worst_case"].__setitem__("attack", "lira"),
     "results.json /worst_case/attack: expected one of the attacks ['loss'], got 'lira'"),
    (lambda d: d.__setitem__("schema_version", 99), "results.json /schema_version: expected one of [1]"),
    (lambda d: d.pop("schema_version"), "results.json /schema_version: missing (expected an integer)"),
    (lambda d: d["shadows"].__setitem__("mean_train_accuracy", True),
     "results.json /shadows/mean_train_accuracy: expected a number in [0, 1] or null, got the boolean True"),
])
def test_report_validates_results_json(run_dir, tmp_path, capsys, edit, message):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    before = snapshot(d)
    doc = json.loads((d / "results.json").read_text())
    edit(doc)
    (d / "results.json").write_text(json.dumps(doc))
    assert mialab.cli.main(["report", str(d)]) == 2
    assert message in one_line(capsys.readouterr().err)
    assert (d / "report.html").read_bytes() == before["report.html"]  # nothing rendered
    with pytest.raises(ValueError):
        validate(doc)


def test_schema_accepts_what_the_writer_writes_and_describes_every_key(run_dir):
    doc = json.loads((run_dir / "results.json").read_text())
    assert validate(doc) is doc
    described = {line.split(":")[0].split("/")[1] for line in describe()}
    assert {"schema_version", "config", "dataset", "target", "attacks", "worst_case", "most_exposed",
            "defense_comparison"} <= described


# -- Markdown escaping --------------------------------------------------------------------------------
def test_markdown_escapes_user_controlled_strings(run_dir, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    doc = json.loads((d / "results.json").read_text())
    doc["dataset"]["name"] = "<script>alert(1)</script>"
    doc["dataset"]["kind"] = "a | b"
    doc["config"]["model"] = "[x](javascript:alert(1)) ![i](http://e/x.png)"
    doc["config"]["defenses"] = [{"name": "<img src=x onerror=alert(1)>", "path": "/data/*x*/_y_"}]
    doc["versions"]["<b>bold</b>"] = "`code` &amp; <!-- c -->"
    doc["target"]["accuracy_note"] = "- not a list\n# not a heading"
    (d / "results.json").write_text(json.dumps(doc))
    render_report(d)
    md = (d / "report.md").read_text()
    assert "<" not in md and ">" not in md  # the report's own Markdown uses no HTML at all
    links = re.findall(r"(?<!\\)\]\(([^)]*)\)", md)  # ](target) not escaped: a link or an image
    assert set(links) == {"roc.png", "distributions.png"} and "\\`code\\`" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "&amp;amp;" in md
    assert "\\*x\\*" in md and "\\_y\\_" in md and "\n# not" not in md
    config = md[md.index("## Configuration"):md.index("## What this audit")]
    rows = [line for line in config.splitlines() if line.startswith("| ")]
    # a | in a value stays inside its cell
    assert rows and all(len(re.split(r"(?<!\\)\|", r)[1:-1]) == 2 for r in rows), rows
    page = (d / "report.html").read_text()
    assert "<script>" not in page and "<img src=x" not in page and "&lt;script&gt;" in page


def test_concurrent_writers_of_one_run_directory_never_share_or_delete_work(tmp_path):
    """Two writers in one process (threads; containers share pid 1 likewise) get their own
    temporary directories; a run that appears while another is written is never deleted
    without overwrite; the finished directory has ordinary permissions, not mkdtemp's 0700."""
    from mialab.report.rundir import staged_run_dir

    out = tmp_path / "run"
    with pytest.raises(ValueError, match="overwrite"):
        with staged_run_dir(out) as first, staged_run_dir(out) as second:
            assert first != second and first.is_dir() and second.is_dir()
            (first / "a.txt").write_text("first")
            (second / "b.txt").write_text("second")
        # the inner writer finished first and owns `out`; the outer one must not replace it
    assert (out / "b.txt").read_text() == "second" and not (out / "a.txt").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]  # the loser cleaned up
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
