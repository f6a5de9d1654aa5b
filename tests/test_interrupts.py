"""Ctrl-C during `python -m mialab audit`: one line on stderr, exit 130, no run directory that
looks complete (an existing one is left as it was), and the models trained before the interrupt
stay in the cache for the rerun.

The interrupt is a real SIGINT the process sends itself at a chosen point (deterministic, not
timed): a small wrapper script patches one function, then runs the command line as
`python -m mialab` does. "train": in the first training step (a backward pass) after the
target model was stored in the cache, i.e. in the middle of the shadow models' training;
"write": inside the run-directory writer, after results.json and the figures are written and
before the report is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mialab.cli

TINY = ["--shadows", "2", "--epochs", "2", "--n-target-train", "200", "--no-defenses", "--attacks", "loss",
        "--bootstrap", "20", "--quiet"]

WRAPPER = '''
import os, signal, sys

# what a terminal gives Python; a parent that ignores SIGINT (a background job) would pass SIG_IGN on
signal.signal(signal.SIGINT, signal.default_int_handler)
import torch
import mialab.cli
from mialab.training.cache import ModelCache

hook, stored = os.environ["MIALAB_TEST_INTERRUPT"], [0]


def interrupt():
    os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt at the next instruction


save = ModelCache.save


def counting_save(self, *args, **kwargs):
    save(self, *args, **kwargs)
    stored[0] += 1


ModelCache.save = counting_save
if hook == "train":
    backward = torch.Tensor.backward

    def interrupted_backward(self, *args, **kwargs):
        if stored[0] >= 1:  # the target is in the cache: this step trains a shadow model
            interrupt()
        return backward(self, *args, **kwargs)

    torch.Tensor.backward = interrupted_backward
elif hook == "write":
    import mialab.report.writer as writer

    write_reports = writer._write_reports

    def interrupted_write(*args, **kwargs):
        interrupt()
        return write_reports(*args, **kwargs)

    writer._write_reports = interrupted_write
sys.exit(mialab.cli.main(sys.argv[1:]))
'''


def run_interrupted(hook: str, args: list[str], tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "interrupted_mialab.py"
    script.write_text(WRAPPER)
    env = {**os.environ, "MIALAB_TEST_INTERRUPT": hook, "MIALAB_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)


def check_one_line_and_130(proc: subprocess.CompletedProcess, cache: Path) -> None:
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("mialab audit: interrupted; models trained so far stay in the cache "
                               f"{cache} and the same command resumes from them"), lines[0]


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


def test_sigint_mid_training_exits_130_and_the_rerun_reuses_the_cache(tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "cache", tmp_path / "run"
    proc = run_interrupted("train", ["audit", *TINY, "--out", str(out)], tmp_path, cache)
    check_one_line_and_130(proc, cache)
    assert not out.exists() and leftovers(out) == []
    # the rerun loads the target trained before the interrupt and trains only the two shadows
    monkeypatch.setenv("MIALAB_CACHE_DIR", str(cache))
    assert mialab.cli.main(["audit", *TINY, "--out", str(out)]) == 0
    counts = json.loads((out / "results.json").read_text())["model_counts"]
    assert counts == {"trained": 2, "loaded_from_cache": 1}, counts


def test_sigint_mid_write_keeps_the_previous_run_whole(tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "cache", tmp_path / "run"
    monkeypatch.setenv("MIALAB_CACHE_DIR", str(cache))
    assert mialab.cli.main(["audit", *TINY, "--out", str(out)]) == 0  # a complete earlier run
    before = snapshot(out)
    proc = run_interrupted("write", ["audit", *TINY, "--out", str(out), "--overwrite"], tmp_path, cache)
    check_one_line_and_130(proc, cache)
    assert snapshot(out) == before and leftovers(out) == []  # never a mix of the old and the new run
    capsys.readouterr()
    assert mialab.cli.main(["report", str(out)]) == 0  # still a complete run directory
    # (an interrupted write of a new run leaves no directory at all: tests/test_run_dir.py)
