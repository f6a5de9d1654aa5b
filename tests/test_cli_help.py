"""The command line explains itself: every option of every subcommand has help text that says
its default (or that it is required), `mialab --version` works, and `mialab cache` shows and
clears the model cache without touching anything else."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

import mialab
from mialab.cli import build_parser, main


def _options():
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sub in subs.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                yield command, action


def test_every_option_has_help_and_a_default():
    missing, no_default = [], []
    for command, action in _options():
        name = f"{command} {'/'.join(action.option_strings) or action.dest}"
        if not (action.help or "").strip():
            missing.append(name)
        elif action.option_strings and not any(w in action.help for w in ("default", "required")):
            no_default.append(name)
    assert not missing, f"options without help text: {missing}"
    assert not no_default, f"options whose help names no default: {no_default}"


def test_help_pages_render(capsys):
    for argv in (["--help"], ["audit", "--help"], ["defend", "--help"], ["audit-model", "--help"],
                 ["report", "--help"], ["list", "--help"], ["cache", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        assert "usage: mialab" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"mialab {mialab.__version__}"


def test_cache_info_and_clear(tmp_path, capsys):
    from mialab.models import build_model
    from mialab.training import TrainConfig, train_model
    from mialab.training.cache import ModelCache, cache_key, cached_train

    root = tmp_path / "cache"
    X = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (X[:, 0] > 0).astype(int)

    def fn():
        return build_model("logreg", input_shape=(3,), n_classes=2)

    keys = [cache_key(data="toy", seed=s) for s in (0, 1, 2)]
    cached_train(keys, lambda todo: ((i, train_model(fn, X, y, config=TrainConfig(epochs=1), seed=i))
                                     for i in todo), fn, ModelCache(root))
    (root / "notes.txt").write_text("mine")  # not the cache's: never counted, never removed
    (root / "data").mkdir()
    (root / "data" / "file.gz").write_bytes(b"x" * 10)
    on_disk = sum(f.stat().st_size for k in keys for f in (root / k).rglob("*") if f.is_file())

    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"cache: {root}" in out and "entries: 3" in out
    assert ModelCache(root).usage() == {"path": str(root), "entries": 3, "bytes": on_disk}

    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "removed 3 entries" in capsys.readouterr().out
    assert ModelCache(root).usage()["entries"] == 0
    assert (root / "notes.txt").read_text() == "mine" and (root / "data" / "file.gz").exists()


def test_cache_info_of_a_missing_directory(tmp_path, capsys):
    assert main(["cache", "info", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "entries: 0" in capsys.readouterr().out


def test_log_lines_go_through_the_progress_bars(monkeypatch):
    """A log line is written with tqdm.write (which clears and redraws the bars), never glued
    onto a bar's text."""
    import logging

    from mialab import cli

    written = []
    monkeypatch.setattr("tqdm.tqdm.write", staticmethod(lambda msg, file=None: written.append(msg)))
    handler = cli._ProgressBarHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.LogRecord("mialab", logging.INFO, __file__, 1, "trained %d", (3,), None))
    assert written == ["trained 3"]
