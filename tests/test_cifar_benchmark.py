"""benchmarks/cifar10.py end to end on tiny CIFAR-format files, and examples/audit_cifar10.py.

The files are written here in the real ``cifar-10-batches-py`` layout (pickled dicts with
``b"data"`` uint8 ``(n, 3072)`` and ``b"labels"``, read by :func:`mialab.data.formats.read_cifar_batch`),
40 random images per file, 240 records, 10 balanced classes. Nothing here is statistical: the
toy run checks that every attack and K is reported with a finite AUC, the CPU notice, the
reference design's sizes and the files written, not what the attacks find in random pixels.
"""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
N_PER_FILE = 40
FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_tiny_cifar(folder: Path, *, n_per_file: int = N_PER_FILE, seed: int = 0) -> None:
    """``folder/data_batch_1..5`` and ``test_batch``, as the CIFAR-10 python version ships them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        batch = {b"batch_label": name.encode(), b"labels": [i % 10 for i in range(n_per_file)],
                 b"data": rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_file)]}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("cifar10_benchmark", ROOT / "benchmarks" / "cifar10.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One toy run on the CPU: logreg, 1 epoch, 2 models per reference set (about 10 s)."""
    tmp = tmp_path_factory.mktemp("cifar")
    write_tiny_cifar(tmp / "cifar-10-batches-py")
    bench = load_benchmark()
    out = tmp / "out"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = bench.main(["--data-root", str(tmp), "--size", "toy", "--model", "logreg", "--device", "cpu",
                             "--n-bootstrap", "20", "--cache-dir", "", "--out", str(out)])
    return bench, result, buf.getvalue(), out


def test_toy_run_reports_every_attack_and_k(toy_run):
    bench, result, printed, out = toy_run
    saved = json.loads((out / "cifar10_logreg_toy.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result["rows"]))
    assert (out / "cifar10_logreg_toy.png").stat().st_size > 0
    assert saved["ks"] == [1, 2]
    # online attacks need an IN and an OUT model per record: K = 2 only; offline ones K = 1 and 2
    expected = {(k, a) for a, (_, _, online) in bench.ATTACKS.items() for k in (1, 2) if not (online and k == 1)}
    assert {(r["k"], r["attack"]) for r in saved["rows"]} == expected
    assert set(saved["attacks"]) == {"LiRA online", "LiRA offline", "RMIA online", "RMIA offline"}
    for r in saved["rows"]:
        assert math.isfinite(r["auc"]) and 0.0 <= r["auc"] <= 1.0, r
        # 70 non-members resolve neither 1% nor 0.1% FPR (1,000 and 10,000 needed): bounds, shown as such
        for key in ("tpr_at_1%", "tpr_at_0.1%"):
            assert r[f"{key}_resolvable"] is False
            assert r[f"{key}_cell"].startswith("<=") and r[f"{key}_cell"].endswith("%*")
            assert 0.0 <= r[key] <= r[f"{key}_upper_bound"] <= 1.0


def test_toy_run_says_cpu_and_records_the_setup(toy_run):
    bench, result, printed, out = toy_run
    assert result["notice"] == bench.CPU_NOTICE == "CPU: reduced size, not comparable to the papers' numbers"
    assert printed.splitlines()[0] == bench.CPU_NOTICE
    assert "| LiRA online: auc |" in printed and "| RMIA offline: tpr_at_0.1% |" in printed
    assert result["device"] == "cpu" and result["precision"] == "fp32" and result["size"] == "toy"
    assert result["records"]["n_records"] == 6 * N_PER_FILE
    split = result["split"]
    # toy: 5/12 of 240 records train the target, 70% of them evaluated, as many non-members
    assert split["members"] + split["train_rest"] == 100 and split["members"] == split["nonmembers"] == 70
    design = result["reference_design"]
    # online population = evaluated + pool = twice the target's training set; each model on half
    assert design["online_population"] == 200 and design["online_records_per_model"] == 100
    assert design["online_models"] == design["offline_models"] == 2
    rt = result["reference_training"]
    assert rt["trained"] == 4 and rt["models_per_minute"] > 0
    assert {"torch", "numpy", "mialab"} <= set(result["versions"])
    for paper in result["published"].values():
        assert paper["paper"] and paper["table"] and paper["model"]


def test_full_size_matches_the_papers_proportions():
    """At full size on CIFAR-10's 60,000 records: target on 25,000, online references on random
    halves of a 50,000-record population (25,000 on average over each pair: the papers' numbers),
    every evaluated record IN for exactly half of the models. Labels only: no model is trained."""
    from mialab.data import make_split
    from mialab.pipeline.threat import online_reference_membership

    bench = load_benchmark()
    sizes = bench.split_sizes(60_000, "full", None)
    assert sizes == {"n_target_train": 25_000, "member_fraction": 0.7, "n_test": 2_500}
    split = make_split(np.arange(60_000) % 10, seed=0, **sizes)
    assert split.members.size == split.nonmembers.size == 17_500
    mm = online_reference_membership(split, 4, seed=0)
    assert mm.record_ids.size == 50_000
    # per pair of models one is IN and the other OUT for each record: a pair splits 50,000 in two
    assert (mm.matrix[0::2] ^ mm.matrix[1::2]).all()
    assert mm.matrix.sum(axis=1).mean() == 25_000
    evaluated = np.isin(mm.record_ids, split.evaluated)
    assert (mm.matrix[:, evaluated].sum(axis=0) == 2).all()
    # the CPU size keeps the same proportions, capped at 2,000 training records
    assert bench.split_sizes(60_000, "cpu", None)["n_target_train"] == 2_000


def run_example(argv: list[str], capsys) -> tuple[int, str]:
    old = sys.argv
    sys.argv = ["audit_cifar10.py", *argv]
    try:
        with pytest.raises(SystemExit) as exc:
            runpy.run_path(str(ROOT / "examples" / "audit_cifar10.py"), run_name="__main__")
    finally:
        sys.argv = old
    return exc.value.code, capsys.readouterr().err


def test_example_refuses_missing_data_without_downloading(tmp_path, capsys):
    code, err = run_example(["--data-root", str(tmp_path / "absent"), "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "does not exist" in err and "--download" in err
    assert not (tmp_path / "absent").exists()  # nothing created, nothing fetched
    (tmp_path / "empty").mkdir()
    code, err = run_example(["--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "cifar10: files not found" in err and "missing data_batch_1" in err
    assert list((tmp_path / "empty").iterdir()) == []
