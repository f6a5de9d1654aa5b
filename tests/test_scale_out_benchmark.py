"""benchmarks/scale_out.py end to end at a tiny size (digits MLP, 1 epoch, fleets of 2 and 4
models, one round), and its wall-time model on hand-computed cases. The process pool a test
before left running is reused (``--reuse-pool``): starting one is most of this file's time.

Nothing here is a timing claim: the run checks that every backend is measured and recorded,
that the local process pool trains the same bits as the in-process backend (the same plan) and
``auto`` the same as the plan it picked, that the model is predicted over the whole grid, and
that the results carry versions, hardware and load. Ray is left out (starting a local cluster
takes longer than this whole test: the Ray backend's equality is tested in the fleet tests).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = (2, 4)
BACKENDS = ("today", "inprocess", "processes", "auto")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("scale_out_benchmark", ROOT / "benchmarks" / "scale_out.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through its module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    bench = load_benchmark()
    out = tmp_path_factory.mktemp("scale_out") / "scale_out.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = bench.main(["--quick", "--workloads", "digits-mlp", "--models", ",".join(map(str, MODELS)),
                             "--mlp-epochs", "1", "--repeats", "1", "--backends", ",".join(BACKENDS),
                             "--reuse-pool", "--out", str(out)])
    return bench, result, buf.getvalue(), out


def test_every_backend_measured_and_parallel_models_identical(tiny_run):
    bench, result, printed, out = tiny_run
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    rows = {(r["models"], r["backend"].split(" ")[0]): r for r in result["rows"]}
    assert set(rows) == {(m, b) for m in MODELS for b in BACKENDS}
    for (m, b), r in rows.items():
        assert r["median_wall_s"] > 0 and math.isclose(r["models_per_min"], 60 * m / r["median_wall_s"])
        assert r["tasks"] == math.ceil(m / r["models_per_task"])
        # the in-process plan's wall time over its tasks: the per-task time of every row of the fleet
        assert r["t_task_s"] == pytest.approx(rows[(m, "inprocess")]["median_wall_s"] / rows[(m, "inprocess")]["tasks"])
    for m in MODELS:
        assert rows[(m, "today")]["speedup_vs_today"] == 1.0 and rows[(m, "inprocess")]["speedup_vs_inprocess"] == 1.0
        # today: one worker, one stacked task; the named plan: one worker per usable core
        assert rows[(m, "today")]["workers"] == 1 and rows[(m, "today")]["tasks"] == 1
        proc = rows[(m, "processes")]
        assert (proc["workers"], proc["threads_per_task"], proc["tasks"]) == \
            (rows[(m, "inprocess")]["workers"], 1, rows[(m, "inprocess")]["tasks"])
        assert proc["equal_to"] == "inprocess" and proc["bit_identical"] is True
        assert proc["parallel_efficiency"] == pytest.approx(proc["speedup_vs_inprocess"] / proc["workers"])
        assert proc["overhead_s"] == pytest.approx(
            proc["median_wall_s"] - math.ceil(proc["tasks"] / proc["workers"]) * proc["t_task_s"])
        auto = rows[(m, "auto")]
        picked = auto["backend"].split("(")[1].rstrip(")")
        assert picked in ("today", "processes") and auto["equal_to"] == ("today" if picked == "today" else picked)
        assert auto["bit_identical"] is True
    auto_runs = [r for r in result["runs"] if r["backend"] == "auto"]
    assert all(r["auto_why"].startswith("auto (") for r in auto_runs)
    # the pool's cold start is measured, unless an earlier test left one running (--reuse-pool)
    if "processes" in result["startup"]:
        assert result["startup"]["processes"]["cold_first_fleet_s"] > 0
        assert result["startup"]["processes"]["startup_s"] is not None
    else:
        assert any(n.startswith("processes: a pool was already running") for n in result["notes"])


def test_model_grid_assumptions_and_provenance(tiny_run):
    bench, result, printed, out = tiny_run
    model = result["model"]
    assert model["backend"] == "processes" and model["assumptions"] == bench.ASSUMPTIONS
    wm = model["workloads"]["digits-mlp"]
    grid = {(p["workers"], p["models"]) for p in wm["predictions"]}
    assert grid == {(n, m) for n in (1, 2, 8, 32, 128) for m in (16, 64, 256)}
    stack = result["workloads"]["digits-mlp"]["stack_size"]
    for p in wm["predictions"]:
        assert p["models_per_task"] == bench.models_per_task(p["models"], stack, p["workers"])
        assert p["wall_s"] == pytest.approx(p["wall_warm_s"] + wm["startup_s"]) and p["wall_warm_s"] > 0
    # every group size the grid needs was measured
    assert {p["models_per_task"] for p in wm["predictions"]} <= set(result["group_sweep"]["digits-mlp"]["task_s"])
    meta = result["meta"]
    assert {"torch", "mialab"} <= set(meta["versions"]) and meta["hardware"]["cpu"]
    assert len(meta["loadavg_at_start"]) == 3 and len(meta["loadavg_at_end"]) == 3
    assert "| models | backend | plan | median_wall_s |" in printed
    assert "| N workers, warm (pool or cluster up) | M = 16 | M = 64 | M = 256 |" in printed
    assert all(a in printed for a in bench.ASSUMPTIONS)


def test_the_wall_time_model_by_hand():
    bench = load_benchmark()
    # 64 models, stacking group 17, 2 workers: groups of min(17, 32) = 17, 4 tasks, 2 rounds
    p = bench.predict(2, 64, stack=17, t_task=lambda g: 0.1 * g, startup=5.0, per_fleet=1.0, per_task=0.5)
    assert (p["models_per_task"], p["tasks"]) == (17, 4)
    assert p["wall_s"] == pytest.approx(5.0 + 1.0 + 2 * (1.7 + 0.5))
    # 128 workers, one model per task (stack 1): 256 tasks in 2 rounds
    p = bench.predict(128, 256, stack=1, t_task=lambda g: 2.0, startup=0.0, per_fleet=0.0, per_task=0.0)
    assert (p["models_per_task"], p["tasks"], p["wall_s"]) == (1, 256, 4.0)
    assert bench.fit_overhead([(1, 1.5), (2, 2.0)]) == pytest.approx((1.0, 0.5))
    # a falling line is not a cost: the better of per-fleet only (mean 1.5) and per-task only
    assert bench.fit_overhead([(1, 2.0), (2, 1.0)]) == pytest.approx((1.5, 0.0))
    assert bench.fit_overhead([]) == (0.0, 0.0)


def test_missing_fashion_mnist_is_skipped_with_a_note(tmp_path, monkeypatch):
    bench = load_benchmark()

    def absent(name, **kw):
        raise FileNotFoundError(f"{name}: files not found under /nowhere")

    monkeypatch.setattr(bench, "load_dataset", absent)
    with contextlib.redirect_stdout(io.StringIO()):
        result = bench.main(["--workloads", "fmnist-cnn", "--backends", "today,inprocess",
                             "--out", str(tmp_path / "s.json")])
    assert result["rows"] == [] and result["model"]["workloads"] == {}
    assert any(n.startswith("fmnist-cnn: skipped, fashion-mnist not found") for n in result["notes"])


def test_parallel_backends_need_the_inprocess_baseline():
    bench = load_benchmark()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench.parse_args(["--backends", "processes,ray"])
