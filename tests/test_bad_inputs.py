"""Bad inputs get one clear line naming the argument, what was expected and what was received.

Issue 11's reproductions first (each by name), then a sweep of the data loaders, the model and
record files, ``audit_model`` and ``AuditConfig``. Command-line cases run ``mialab.cli.main`` and
check exit code 2, one ``mialab <cmd>: error: ...`` line on stderr and no traceback; library
cases check the exception type and message. Nothing here trains a model: every refusal happens
before training, which is part of what is tested. Last, the tabular standardisation
(``mialab.data.standardize_features``, ``AuditConfig.standardize``) against scikit-learn.
"""

from __future__ import annotations

import gzip
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import mialab
from mialab.cli import main
from mialab.config import AuditConfig
from mialab.data import (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, check_labels, from_arrays, from_csv, load_dataset,
                         loaders, standardize_features)
from mialab.model_files import load_records, load_sklearn, load_torch_weights, load_torchscript
from mialab.api import audit_model

EXECUTED: list[str] = []


class Payload:
    """Unpickling this runs code: what a malicious model file would do."""

    def __reduce__(self):
        return (EXECUTED.append, ("pwned",))


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI, require exit code 2 and exactly one error line; return the message."""
    rc = main([*argv, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, f"exit code {rc}, stderr: {err}"
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and re.match(r"mialab [a-z-]+: error: ", lines[0]), err
    return lines[0].split(": error: ", 1)[1]


def records(n: int = 20, d: int = 4, *, seed: int = 0, **override: Any) -> dict[str, np.ndarray]:
    """Arrays for a records .npz: members and non-members of 2 classes (keys as load_records reads)."""
    rng = np.random.default_rng(seed)
    out = dict(members_X=rng.random((n, d)), members_y=np.arange(n) % 2,
               nonmembers_X=rng.random((n, d)) + 2.0, nonmembers_y=np.arange(n) % 2)
    out.update(override)
    return {k: v for k, v in out.items() if v is not None}


def npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in tmp_path, with no model cache outside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIALAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def weights(in_tmp) -> Path:
    """A valid state dict of mialab's mlp for 4 features and 2 classes."""
    import torch

    model = mialab.models.build_model("mlp", input_shape=(4,), n_classes=2, width=8)
    path = in_tmp / "w.pt"
    torch.save(model.state_dict(), path)
    return path


def write_idx_set(folder: Path, n: int = 12) -> None:
    """Fashion-MNIST-shaped IDX files (gzipped), n train and n test records."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, magic in (("images-idx3", imgs, IDX_IMAGES_MAGIC), ("labels-idx1", labs, IDX_LABELS_MAGIC)):
            raw = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in arr.shape) + arr.tobytes()
            with gzip.open(folder / f"{prefix}-{kind}-ubyte.gz", "wb") as f:
                f.write(raw)


# ----------------------------------------------------------------------------------------------
# issue 11: the reproductions
# ----------------------------------------------------------------------------------------------
def test_csv_that_is_a_directory(capsys, in_tmp):
    (in_tmp / "SOME_DIRECTORY").mkdir()
    msg = cli_error(capsys, ["audit", "--no-defenses", "--csv", "SOME_DIRECTORY", "--label-column", "x"])
    assert msg == "from_csv: path must be a CSV file, got the directory 'SOME_DIRECTORY'"


def test_skops_file_that_is_a_pickle_is_refused_unread(capsys, in_tmp):
    np.savez(in_tmp / "r.npz", **records())
    with open(in_tmp / "model.skops", "wb") as f:
        pickle.dump(Payload(), f)
    msg = cli_error(capsys, ["audit-model", "--sklearn", "model.skops", "--data", "r.npz"])
    assert msg.startswith("'model.skops' is not a skops file (a zip archive written by skops.io.dump)")
    assert EXECUTED == []  # the pickle inside never ran


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04garbage", b""], ids=["text", "zip-header", "empty"])
def test_corrupt_npz(capsys, weights, content):
    Path("corrupt.npz").write_bytes(content)
    msg = cli_error(capsys, ["audit-model", "--weights", str(weights), "--arch", "mlp", "--width", "8",
                             "--data", "corrupt.npz"])
    assert msg == ("records file 'corrupt.npz' is not an .npz archive (a zip written by numpy.savez); it is "
                   "corrupt or another format")


def test_npz_with_a_damaged_member(capsys, weights):
    raw = bytearray(npz(Path("ok.npz"), **records()).read_bytes())
    raw[200:260] = b"\xff" * 60  # inside members_X's data: the zip directory is intact, the CRC is not
    Path("damaged.npz").write_bytes(bytes(raw))
    msg = cli_error(capsys, ["audit-model", "--weights", str(weights), "--arch", "mlp", "--width", "8",
                             "--data", "damaged.npz"])
    assert re.fullmatch(r"records file 'damaged.npz' key 'members_X' is damaged: BadZipFile: .*CRC.*", msg)


def test_empty_weights_file(capsys, in_tmp):
    np.savez(in_tmp / "r.npz", **records())
    (in_tmp / "e.pt").write_bytes(b"")
    msg = cli_error(capsys, ["audit-model", "--weights", "e.pt", "--arch", "mlp", "--data", "r.npz"])
    assert msg == ("weights file 'e.pt' is empty (0 bytes), expected a state dict saved with "
                   "torch.save(model.state_dict(), path)")


def test_exception_without_message_is_reported_by_its_type(in_tmp, monkeypatch):
    import torch

    def raise_empty(*a, **k):
        raise EOFError()  # str() is "": indexing its first line raised IndexError before

    monkeypatch.setattr(torch, "load", raise_empty)
    (in_tmp / "w.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"could not be read as tensors with torch.load\(weights_only=True\): "
                                         r"EOFError$"):
        load_torch_weights(in_tmp / "w.pt", arch="mlp", input_shape=(4,), n_classes=2)


@pytest.mark.parametrize("labels,match", [
    (np.arange(20) % 10 - 1, r"members \(r.npz\): y must be non-negative class indices, got -1 at index 0"),
    (np.array(["cat", "dog"] * 10),
     r"members \(r.npz\): y must hold integer labels \(class indices\), got dtype <U3 \(first non-integer 'cat'"),
    (np.arange(20) * 0.5, r"members \(r.npz\): y must be integer-valued labels, got 10 non-integral value\(s\) "
                          r"\(first 0.5 at index 1\)"),
    (np.arange(20) % 2 == 0, r"members \(r.npz\): y must hold integer labels \(class indices\), got booleans"),
], ids=["negative", "strings", "fractional", "bool"])
def test_labels_are_checked_before_use(capsys, weights, labels, match):
    # the CLI once took n_classes = max(label) + 1 first: -1..8 gave "weights do not fit 9 classes"
    np.savez("r.npz", **records(members_y=labels))
    msg = cli_error(capsys, ["audit-model", "--weights", str(weights), "--arch", "mlp", "--width", "8",
                             "--data", "r.npz"])
    assert re.fullmatch(match + ".*", msg), msg


def test_empty_members(capsys, weights):
    np.savez("r.npz", **records(members_X=np.zeros((0, 4)), members_y=np.zeros(0, np.int64)))
    msg = cli_error(capsys, ["audit-model", "--weights", str(weights), "--arch", "mlp", "--width", "8",
                             "--data", "r.npz"])
    assert msg == "members (r.npz): X must hold at least one record, got shape (0, 4)"
    with pytest.raises(ValueError, match="members: y must hold at least one label, got none"):
        audit_model(lambda X: np.zeros(len(X), np.int64), (np.zeros((1, 4)), []), (np.ones((1, 4)), [1]),
                    access="label", quiet=True)


def test_string_attacks_are_refused_with_the_list_meant():
    with pytest.raises(TypeError, match=re.escape("attacks must be a list of names such as ['loss'], got the "
                                                  "string 'loss'")):
        mialab.audit(attacks="loss", quiet=True)
    with pytest.raises(TypeError, match=re.escape("attacks must be a list of names such as ['loss']")):
        AuditConfig(attacks="loss")
    # a string already split into characters (tuple("loss")) gets the same hint
    with pytest.raises(ValueError, match=re.escape("got unknown ['l', 'o', 's', 's'] (single characters: a string "
                                                   "was split where a list of names is expected; write "
                                                   "attacks=['loss'])")):
        AuditConfig(attacks=tuple("loss"))
    with pytest.raises(TypeError, match=re.escape("defenses must be a list of mappings such as [{'name': 'l2'}], "
                                                  "got the string 'l2'")):
        AuditConfig(defenses="l2")
    with pytest.raises(TypeError, match=re.escape("defenses must be a list of mappings such as [{'name': 'l2'}], "
                                                  "got a single mapping")):
        AuditConfig(defenses={"name": "l2"})
    with pytest.raises(TypeError, match="fpr_targets must be a sequence of floats in \\(0, 1\\), got '0.01'"):
        AuditConfig(fpr_targets="0.01")
    with pytest.raises(TypeError, match=re.escape("attacks must be a list of attack names such as ['loss'] or "
                                                  "None, got 'loss'")):
        audit_model(lambda X: np.zeros(len(X), np.int64), (np.zeros((2, 4)), [0, 1]), (np.ones((2, 4)), [0, 1]),
                    attacks="loss", access="label", quiet=True)


@pytest.fixture(scope="module")
def own() -> dict[str, Any]:
    """A fitted logistic regression, its members, non-members and a population of 600 (3 classes)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    Xm, Xn, Xp = rng.random((40, 4)), rng.random((40, 4)) + 1.0, rng.random((600, 4)) + 2.0
    ym, yn, yp = np.arange(40) % 3, np.arange(40) % 3, np.arange(600) % 3
    est = LogisticRegression(max_iter=200).fit(Xm, ym)
    return dict(est=est, members=(Xm, ym), nonmembers=(Xn, yn), population=(Xp, yp))


def _fail_train(X, y, seed):  # a trainer that must never be reached
    raise AssertionError("trained a shadow model before refusing the input")


@pytest.mark.parametrize("value,exc,match", [
    (-5, ValueError, r"n_target_train must be an int >= 40 \(the target's training-set size: at least the 40 "
                     r"members it trained on\) or None \(default: the number of members\), got -5"),
    (0, ValueError, r"n_target_train must be an int >= 40 .*got 0$"),
    (39, ValueError, r"n_target_train must be an int >= 40 .*got 39$"),
    (True, TypeError, r"n_target_train must be an int .*got True \(bool\)"),
    (40.0, TypeError, r"n_target_train must be an int .*got 40.0 \(float\)"),
    (100_000, ValueError, r"n_target_train=100000: shadow models train on as many records as the target, but a "
                          r"population of 600 allows at most 450 per shadow .*give a population of at least "
                          r"133333 records or a smaller n_target_train \(at least the 40 members\)"),
])
def test_n_target_train_is_named_and_never_replaced(own, value, exc, match):
    with pytest.raises(exc, match=match):
        audit_model(lambda X: own["est"].predict_proba(X), own["members"], own["nonmembers"],
                    population=own["population"], train_fn=_fail_train, attacks=["loss"], n_target_train=value,
                    quiet=True, n_bootstrap=20)


def test_n_target_train_none_is_the_member_count(own):
    res = audit_model(own["est"], own["members"], own["nonmembers"], attacks=["correctness"], quiet=True,
                      n_bootstrap=20)
    assert res.config["n_target_train"] is None  # recorded as given: the default, the 40 members
    # the default is never shrunk either: 40 members need a population of 53 (40 in, 13 out per shadow)
    small = (own["population"][0][:52], own["population"][1][:52])
    with pytest.raises(ValueError, match=r"^n_target_train=40 \(default: the number of members\): shadow models "
                                         r"train on as many records as the target, but a population of 52 allows "
                                         r"at most 39 per shadow .*give a population of at least 53 records$"):
        audit_model(own["est"], own["members"], own["nonmembers"], population=small, train_fn=_fail_train,
                    attacks=["loss"], quiet=True)
    enough = (own["population"][0][:53], own["population"][1][:53])  # the size the message asks for

    def reached(X, y, seed):
        assert len(X) == 40  # each shadow trains on as many records as the target
        raise _Reached

    with pytest.raises(_Reached):
        audit_model(own["est"], own["members"], own["nonmembers"], population=enough, train_fn=reached,
                    attacks=["loss"], quiet=True)


class _Reached(Exception):
    """Training was reached: the inputs were accepted."""


def test_corrupt_toml_names_the_file(capsys, in_tmp):
    (in_tmp / "bad.toml").write_text("seed = 3\nattacks = [\"loss\"\nn_shadows = 2\n")
    msg = cli_error(capsys, ["audit", "--no-defenses", "--config", "bad.toml"])
    assert re.fullmatch(r"config file 'bad.toml' is not valid TOML: .*\(at line 3, column \d+\)", msg), msg
    with pytest.raises(ValueError, match=r"config file '.*bad.toml' is not valid TOML"):
        AuditConfig.from_toml(in_tmp / "bad.toml")


@pytest.mark.parametrize("text,exc,match", [
    ('attacks = "loss"\n', TypeError,
     r"config file '.*c.toml': attacks must be a list of names such as \['loss'\], got the string 'loss'"),
    ("standardize = 1\n", TypeError, r"config file '.*c.toml': standardize must be a bool \(true/false\), got 1"),
    ("n_shadow = 3\n", ValueError, r"config file '.*c.toml': unknown audit setting\(s\) \['n_shadow'\]"),
    ("n_target_train = -5\n", ValueError, r"config file '.*c.toml': n_target_train must be an int >= 1 or None, "
                                          r"got -5"),
    ("member_fraction = 1.5\n", ValueError, r"config file '.*c.toml': member_fraction must be a float in \(0, 1\)"),
    ("[training]\nepoch = 3\n", ValueError, r"config file '.*c.toml': unknown training setting\(s\) \['epoch'\]"),
])
def test_toml_settings_refused_name_the_file(tmp_path, text, exc, match):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(exc, match=match):
        AuditConfig.from_toml(tmp_path / "c.toml")


def test_toml_not_text_or_a_directory(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"config file '.*bin.toml' is not UTF-8 text \(TOML\)"):
        AuditConfig.from_toml(tmp_path / "bin.toml")
    with pytest.raises(ValueError, match=r"config file must be a TOML file, got the directory"):
        AuditConfig.from_toml(tmp_path)
    with pytest.raises(TypeError, match="AuditConfig.from_dict needs a mapping of settings, got list"):
        AuditConfig.from_dict([("seed", 1)])


@pytest.mark.parametrize("label,match", [
    ("-1", r"row 2 must be a non-negative integer class index, got '-1'"),
    ("0.5", r"row 2 must be a non-negative integer class index, got '0.5'"),
    ("cat", r"row 2 must be a non-negative integer class index, got 'cat'"),
    # int() and float() accept these, a class index column does not
    ("+3", r"row 2 must be a non-negative integer class index, got '\+3'"),
    ("1_000", r"row 2 must be a non-negative integer class index, got '1_000'"),
    ("1e3", r"row 2 must be a non-negative integer class index, got '1e3'"),
    ("\u0663", r"row 2 must be a non-negative integer class index, got '\u0663'"),
])
def test_csv_labels_must_be_class_indices_unless_names_are_asked_for(capsys, in_tmp, label, match):
    (in_tmp / "d.csv").write_text(f"x,label\n1,0\n2,{label}\n3,1\n")
    msg = cli_error(capsys, ["audit", "--no-defenses", "--csv", "d.csv", "--label-column", "label"])
    assert re.fullmatch(r"from_csv: d.csv column 'label' " + match + r" \(labels that are names: "
                        r"class_names=True, --class-names on the command line\)", msg), msg
    named = from_csv(in_tmp / "d.csv", label_column="label", class_names=True)  # asked for: names
    assert named.class_names == tuple(sorted({"0", label, "1"}))


def test_named_data_root_must_exist(capsys, in_tmp, monkeypatch):
    system = in_tmp / "system-copy"
    write_idx_set(system)  # a system-wide copy exists: the old code fell back to it
    monkeypatch.setitem(loaders._SYSTEM_DIRS, "fashion-mnist", system)
    monkeypatch.setenv("MIALAB_DATA", str(in_tmp / "default-root"))
    assert load_dataset("fashion-mnist").source == str(system)  # no root named: the system copy is used
    msg = cli_error(capsys, ["audit", "--no-defenses", "--dataset", "fashion-mnist", "--data-root", "/nonexistent"])
    assert msg.startswith("data_root (root) '/nonexistent' does not exist: a data root you name must be an "
                          "existing directory")


@pytest.mark.parametrize("scale", [0.9, 1.01])
def test_auto_output_refuses_to_guess(own, scale):
    with pytest.raises(ValueError, match=rf"output='auto' cannot tell whether the model returns probabilities or "
                                         rf"logits: every value lies in \[0, 1\] like probabilities, but row \d+ "
                                         rf"sums to {scale:g}, not 1 \(within 0.0001\); declare "
                                         rf"output='probabilities', output='logits' or output='labels'"):
        audit_model(lambda X: own["est"].predict_proba(X) * scale, own["members"], own["nonmembers"],
                    attacks=["correctness"], access="label", quiet=True)


def test_auto_output_decides_on_evidence(own):
    est = own["est"]
    cases = {"probabilities": est.predict_proba, "logits": est.decision_function,
             "labels": est.predict, "float32 softmax": lambda X: _softmax32(est.decision_function(X))}
    for name, fn in cases.items():
        res = audit_model(fn, own["members"], own["nonmembers"], attacks=["correctness"], access="label",
                          quiet=True, n_bootstrap=20)
        assert res.config["model_output"] == ("probabilities" if name == "float32 softmax" else name)
    shifted = lambda X: est.predict_proba(X) * 2 - np.array([1.0, 0.0, 0.0])  # rows sum to 1, values < 0
    with pytest.raises(ValueError, match=r"every row sums to 1 like probabilities, but values lie outside \[0, 1\]"):
        audit_model(shifted, own["members"], own["nonmembers"], attacks=["correctness"], access="label", quiet=True)
    # declared, the same answers are accepted as what the user says they are
    res = audit_model(shifted, own["members"], own["nonmembers"], output="logits", attacks=["correctness"],
                      access="label", quiet=True, n_bootstrap=20)
    assert res.config["model_output"] == "logits"


def _softmax32(z: np.ndarray) -> np.ndarray:
    e = np.exp((z - z.max(axis=1, keepdims=True)).astype(np.float32))
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# sweep: the command line
# ----------------------------------------------------------------------------------------------
def test_cli_sweep(capsys, weights):
    cases: list[tuple[list[str], str]] = []
    Path("xy.csv").write_bytes(b"x,label\n1,0\n2,1\n")
    Path("bin.csv").write_bytes(b"x,label\n\xff\xfe,1\n")
    cases.append((["audit", "--no-defenses", "--csv", "missing.csv", "--label-column", "x"],
                  r"from_csv: path: no such file 'missing.csv'"))
    cases.append((["audit", "--no-defenses", "--csv", "bin.csv", "--label-column", "label"],
                  r"from_csv: 'bin.csv' must be a UTF-8 text CSV file, got undecodable bytes at offset 8"))
    cases.append((["audit", "--no-defenses", "--csv", "xy.csv", "--label-column", "y"],
                  r"from_csv: label_column 'y' not found in xy.csv; columns found: \['x', 'label'\]"))
    Path("notskops.skops").write_bytes(b"")
    with zipfile.ZipFile("notskops.skops", "w") as z:
        z.writestr("a.txt", "hello")
    np.savez("r.npz", **records())
    cases.append((["audit-model", "--sklearn", "notskops.skops", "--data", "r.npz"],
                  r"'notskops.skops' is not a readable skops file: KeyError: .*schema.json.*"))
    cases.append((["audit-model", "--sklearn", "missing.skops", "--data", "r.npz"],
                  r"scikit-learn model file: no such file 'missing.skops'"))
    Path("adir").mkdir()
    cases.append((["audit-model", "--weights", "adir", "--arch", "mlp", "--data", "r.npz"],
                  r"weights file must be a file, got the directory 'adir'"))
    Path("junk.pt").write_bytes(b"junkjunk")
    cases.append((["audit-model", "--weights", "junk.pt", "--arch", "mlp", "--data", "r.npz"],
                  r"weights file 'junk.pt' could not be read as tensors with torch.load\(weights_only=True\): .+"))
    Path("junk.ts").write_bytes(b"junkjunk")
    cases.append((["audit-model", "--torchscript", "junk.ts", "--data", "r.npz"],
                  r"'junk.ts' is not a TorchScript file torch.jit.load can read: \w+(: .+)?"))
    np.save("arr.npy", np.zeros(3))
    Path("arr.npy").rename("arr.npz")
    cases.append((["audit-model", "--weights", str(weights), "--arch", "mlp", "--data", "arr.npz"],
                  r"records file 'arr.npz' is not an .npz archive .*"))
    w = ["audit-model", "--weights", str(weights), "--arch", "mlp", "--width", "8", "--data"]
    for name, arrays, expected in [
        ("nan.npz", records(nonmembers_X=np.full((20, 4), np.nan)),
         r"nonmembers \(nan.npz\): X must be finite, got 80 NaN/inf value\(s\) \(first nan at index \(0, 0\)\)"),
        ("typo.npz", records(population_x=np.zeros((5, 4)), population_y=np.zeros(5, np.int64)),
         r"records file 'typo.npz' holds unknown key\(s\) \['population_x'\]; known keys: .*"),
        ("half.npz", records(population_X=np.zeros((5, 4))),
         r"records file 'half.npz' must hold population_X and population_y together, got only \['population_X'\]"),
        ("shape.npz", records(nonmembers_X=np.zeros((20, 5))),
         r"nonmembers \(shape.npz\): X must have the same input shape as the members, \(4,\), got \(5,\)"),
        ("count.npz", records(members_y=np.zeros(19, np.int64)),
         r"members \(count.npz\): y must have one label per row of X \(20\), got 19"),
        ("strx.npz", records(members_X=np.full((20, 4), "a")),
         r"members \(strx.npz\): X must hold numbers, got dtype <U1"),
        ("few.npz", {"members_X": np.zeros((2, 4))},
         r"records file 'few.npz' must hold \['members_X', 'members_y', 'nonmembers_X', 'nonmembers_y'\].*"),
        ("big.npz", records(nonmembers_y=np.full(20, 10**9)),
         r"nonmembers \(big.npz\): y must be class indices below 100000, got 1000000000 at index 0 .*"),
        ("obj.npz", records(members_y=np.array([0, None] * 10, dtype=object)),
         r"records file 'obj.npz' key 'members_y' could not be read with allow_pickle=False .*"),
    ]:
        np.savez(name, **arrays)
        cases.append(([*w, name], expected))
    cases.append((["audit-model", "--weights", str(weights), "--arch", "mlp", "--data", "r.npz", "--members", "m.csv"],
                  r"give the records either as one .npz \(data, --data\) or as CSV files .*not both"))
    Path("m.csv").write_text("a,b,label\n0,1,cat\n1,2,dog\n")
    cases.append((["audit-model", "--weights", str(weights), "--arch", "mlp", "--members", "m.csv", "--nonmembers",
                   "m.csv", "--label-column", "label"],
                  r"members CSV file: m.csv column 'label' row 1 must be a non-negative integer class index, got "
                  r"'cat' \(the class index the model predicts; names cannot be matched to the model's outputs\)"))
    cases.append((["audit-model", "--weights", str(weights), "--arch", "mlp", "--members", "m.csv", "--nonmembers",
                   "nope.csv", "--label-column", "label"], r"nonmembers CSV file: no such file 'nope.csv'"))
    for argv, expected in cases:
        msg = cli_error(capsys, argv)
        assert re.fullmatch(expected, msg), f"{argv}: {msg}"


# ----------------------------------------------------------------------------------------------
# sweep: the library
# ----------------------------------------------------------------------------------------------
def _lib_cases(tmp: Path, own: dict[str, Any]) -> list[tuple[str, Callable[[], Any], type, str]]:
    """(case, call, exception type, message regex) for the library sweep."""
    M, N, P, est = own["members"], own["nonmembers"], own["population"], own["est"]

    def am(**kw):
        kw.setdefault("attacks", ["correctness"])
        members, nonmembers = kw.pop("members", M), kw.pop("nonmembers", N)
        return lambda: audit_model(kw.pop("model", est), members, nonmembers, quiet=kw.pop("quiet", True), **kw)

    (tmp / "plain.csv").write_text("x,label\n1,0\n2,1\n")
    (tmp / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    (tmp / "broken.pkl").write_bytes(b"\x80\x04not a pickle")
    (tmp / "empty_sd.pt").write_bytes(b"")
    import torch

    torch.save({}, tmp / "empty_dict.pt")
    return [
        # data: from_arrays, from_csv, load_dataset, check_labels
        ("from_arrays: empty X", lambda: from_arrays(np.zeros((0, 3)), []), ValueError,
         r"from_arrays: X must hold at least one record, got shape \(0, 3\)"),
        ("from_arrays: ragged X", lambda: from_arrays([[0, 1], [2]], [0, 1]), ValueError,
         r"from_arrays: X must be a rectangular numeric array, got a ragged list"),
        ("from_arrays: ragged y", lambda: from_arrays(np.zeros((2, 2)), [[0], [1, 2]]), ValueError,
         r"from_arrays: y must be a 1-D sequence of integer class labels, got a ragged list"),
        ("from_arrays: name not str", lambda: from_arrays(np.zeros((2, 2)), [0, 1], name=3), TypeError,
         r"from_arrays: name must be a non-empty str, got 3 \(int\)"),
        ("from_arrays: inf label", lambda: from_arrays(np.zeros((2, 2)), [0.0, np.inf]), ValueError,
         r"from_arrays: y must be finite integer labels, got inf at index 1"),
        ("from_arrays: object labels", lambda: from_arrays(np.zeros((2, 2)), np.array([0, None], dtype=object)),
         TypeError, r"from_arrays: y must hold integer labels \(class indices\), got dtype object \(first "
                    r"non-integer None at index 1\).*"),
        ("check_labels: 2-D", lambda: check_labels(np.zeros((2, 2)), name="y"), ValueError,
         r"y must be 1-D \(n,\) integer class labels, got shape \(2, 2\)"),
        ("from_csv: label_column not str", lambda: from_csv(tmp / "plain.csv", label_column=3), TypeError,
         r"from_csv: label_column must be a non-empty str, got 3 \(int\)"),
        ("from_csv: class_names not bool", lambda: from_csv(tmp / "plain.csv", label_column="label",
                                                            class_names="yes"), TypeError,
         r"from_csv: class_names must be a bool, got 'yes' \(str\)"),
        ("from_csv: path not a path", lambda: from_csv(3, label_column="label"), TypeError,
         r"from_csv: path must be a CSV file path \(str or os.PathLike\), got 3 \(int\)"),
        ("load_dataset: root not a path", lambda: load_dataset("mnist", root=3), TypeError,
         r"data_root \(root\) must be a str or os.PathLike directory, got 3 \(int\)"),
        ("load_dataset: root is a file", lambda: load_dataset("mnist", root=tmp / "plain.csv"), ValueError,
         r"data_root \(root\) must be a directory, got the file '.*plain.csv'"),
        ("load_dataset: download not bool", lambda: load_dataset("mnist", download="no"), TypeError,
         r"download must be a bool, got 'no' \(str\)"),
        ("load_dataset: name not str", lambda: load_dataset(["mnist"]), TypeError,
         r"dataset name must be a str, got \['mnist'\] \(list\)"),
        # model files
        ("load_sklearn: trusted pickle of a list", lambda: load_sklearn(tmp / "list.pkl", trust_pickle=True),
         ValueError, r"'.*list.pkl' must hold a scikit-learn estimator with predict_proba, got builtins.list"),
        ("load_sklearn: trusted corrupt pickle", lambda: load_sklearn(tmp / "broken.pkl", trust_pickle=True),
         ValueError, r"'.*broken.pkl' could not be loaded as a .pkl file: \w+: .*"),
        ("load_sklearn: trust_pickle not bool", lambda: load_sklearn(tmp / "list.pkl", trust_pickle="yes"),
         TypeError, r"trust_pickle must be a bool, got 'yes' \(str\)"),
        ("load_torch_weights: empty dict", lambda: load_torch_weights(tmp / "empty_dict.pt", arch="mlp",
                                                                      input_shape=(4,), n_classes=2),
         ValueError, r"weights file '.*empty_dict.pt' must hold a state dict \(parameter name -> tensor\), got an "
                     r"empty dict"),
        ("load_torchscript: empty file", lambda: load_torchscript(tmp / "empty_sd.pt"), ValueError,
         r"'.*empty_sd.pt' is not a TorchScript file torch.jit.load can read: \w+.*"),
        ("load_records: path not a path", lambda: load_records(3), TypeError,
         r"records file must be a file path \(str or os.PathLike\), got 3 \(int\)"),
        ("load_records: no label column", lambda: load_records(members=tmp / "plain.csv",
                                                               nonmembers=tmp / "plain.csv"), ValueError,
         r"CSV records need label_column \(--label-column\), got none"),
        ("load_records: no nonmembers", lambda: load_records(members=tmp / "plain.csv"), ValueError,
         r"give the records as data=.npz \(--data\) or as members= and nonmembers= CSV files .*nonmembers=None"),
        # audit_model
        ("audit_model: n_classes too small", am(n_classes=2), ValueError,
         r"n_classes=2 is too small for the records: the labels go up to 2, so n_classes must be at least 3"),
        ("audit_model: n_classes bool", am(n_classes=True), TypeError,
         r"n_classes must be an int >= 2 \(the model's number of outputs\) or None, got True \(bool\)"),
        ("audit_model: negative labels", am(members=(M[0], M[1] - 1)), ValueError,
         r"members: y must be non-negative class indices, got -1 at index 0"),
        ("audit_model: string labels", am(nonmembers=(N[0], N[1].astype(str))), TypeError,
         r"nonmembers: y must hold integer labels \(class indices\), got dtype <U21 .*"),
        ("audit_model: NaN features", am(nonmembers=(np.full_like(N[0], np.nan), N[1])), ValueError,
         r"nonmembers: X must be finite, got 160 NaN/inf value\(s\) \(first nan at index \(0, 0\)\)"),
        ("audit_model: 3-D features", am(members=(M[0].reshape(40, 2, 2), M[1])), ValueError,
         r"members: X must be \(n, d\) tabular data or \(n, C, H, W\) images, got shape \(40, 2, 2\)"),
        ("audit_model: string features", am(members=(M[0].astype(str), M[1])), TypeError,
         r"members: X must hold numbers, got dtype <U32"),
        ("audit_model: members not a pair", am(members=M[0]), TypeError,
         r"members must be a pair \(X, y\) or a Dataset, got ndarray"),
        ("audit_model: population shape", am(population=(P[0][:, :3], P[1])), ValueError,
         r"population: X must have the same input shape as the members, \(4,\), got \(3,\)"),
        ("audit_model: only class 0", am(model=lambda X: np.zeros(len(X), np.int64), access="label",
                                         members=(M[0], M[1] * 0), nonmembers=(N[0], N[1] * 0)), ValueError,
         r"the records hold only class 0, so n_classes would be 1: pass n_classes .*"),
        ("audit_model: batch_size 0", am(batch_size=0), ValueError,
         r"batch_size must be an int >= 1 \(records per query\) or None, got 0"),
        ("audit_model: quiet not bool", am(quiet="yes"), TypeError, r"quiet must be a bool, got 'yes' \(str\)"),
        ("audit_model: seed negative", am(seed=-1), ValueError, r"seed must be in \[0, 2\*\*63 - 1\], got -1"),
        ("audit_model: seed float", am(seed=1.5), TypeError, r"seed must be a non-negative int, got 1.5 \(float\)"),
        ("audit_model: model_params not a mapping", am(model_params="wide"), TypeError,
         r"model_params must be a mapping of hyperparameters or None, got 'wide'"),
        ("audit_model: unknown output", am(output="probs"), ValueError,
         r"output must be one of \['auto', 'logits', 'probabilities', 'labels'\], got 'probs'"),
        ("audit_model: unknown attack", am(attacks=["los"]), ValueError,
         r"attacks must be among \[.*\], got unknown \['los'\]"),
        ("audit_model: train_fn not callable", am(train_fn=3), TypeError,
         r"train_fn must be a function \(X, y, seed\) -> trained model or None, got 3"),
        ("audit_model: name empty", am(name=""), TypeError, r"name must be a non-empty str, got ''"),
        ("audit_model: auto, int (n, C) answers", am(model=lambda X: np.zeros((len(X), 3), np.int64),
                                                     access="label"), ValueError,
         r"output='auto' cannot tell what the model returns: expected int labels \(n,\) or float \(n, n_classes\) "
         r"probabilities or logits, got int64 \(40, 3\); declare .*"),
        ("audit_model: auto, NaN answers", am(model=lambda X: np.full((len(X), 3), np.nan), access="label"),
         ValueError, r"the model's outputs must be finite, got 120 NaN/inf value\(s\) \(first at index \(0, 0\)\)"),
        ("audit_model: n_shadows 0", am(n_shadows=0), ValueError, r"n_shadows must be an int >= 1, got 0"),
        # AuditConfig
        ("AuditConfig: standardize not bool", lambda: AuditConfig(standardize="yes"), TypeError,
         r"standardize must be a bool \(true/false\), got 'yes' \(str\)"),
        ("AuditConfig: n_target_train bool", lambda: AuditConfig(n_target_train=True), ValueError,
         r"n_target_train must be an int >= 1 or None, got True \(bool\)"),
        ("AuditConfig: n_test 0", lambda: AuditConfig(n_test=0), ValueError,
         r"n_test must be an int >= 1 or None, got 0"),
        ("AuditConfig: n_validation negative", lambda: AuditConfig(n_validation=-1), ValueError,
         r"n_validation must be an int >= 0, got -1"),
        ("AuditConfig: member_fraction bool", lambda: AuditConfig(member_fraction=True), ValueError,
         r"member_fraction must be a float in \(0, 1\), got True \(bool\)"),
        ("AuditConfig: attacks not a list", lambda: AuditConfig(attacks=None), TypeError,
         r"attacks must be a list of names such as \['loss'\], got None \(NoneType\)"),
        ("AuditConfig: attack name not str", lambda: AuditConfig(attacks=["loss", 3]), TypeError,
         r"attacks must hold names \(str\), got 3 \(int\) in \['loss', 3\]"),
        ("AuditConfig: dataset empty", lambda: AuditConfig(dataset=""), TypeError,
         r"dataset must be a name \(non-empty str\), got ''"),
        ("AuditConfig: defenses not a list", lambda: AuditConfig(defenses=3), TypeError,
         r"defenses must be a list of mappings with a 'name', got 3 \(int\)"),
        # standardize_features
        ("standardize_features: images", lambda: standardize_features(np.zeros((2, 1, 2, 2)), [0]), ValueError,
         r"standardize_features: X must be 2-D tabular features \(n, d\), got shape \(2, 1, 2, 2\) .*"),
        ("standardize_features: int X", lambda: standardize_features(np.zeros((2, 2), np.int64), [0]), TypeError,
         r"standardize_features: X must be floating point, got dtype int64"),
        ("standardize_features: NaN", lambda: standardize_features(np.array([[np.nan], [1.0]]), [0]), ValueError,
         r"standardize_features: X must be finite, got 1 NaN/inf value\(s\) \(first at index \(0, 0\)\)"),
        ("standardize_features: bool mask", lambda: standardize_features(np.zeros((2, 2)), [True, False]),
         TypeError, r"standardize_features: fit_rows must be 1-D int row indices \(k,\), got bool \(2,\)"),
        ("standardize_features: empty rows", lambda: standardize_features(np.zeros((2, 2)), np.zeros(0, int)),
         ValueError, r"standardize_features: fit_rows must hold at least one row, got none"),
        ("standardize_features: out of range", lambda: standardize_features(np.zeros((2, 2)), [0, 2]), ValueError,
         r"standardize_features: fit_rows must lie in \[0, 1\] for X with 2 rows, got range \[0, 2\]"),
    ]


@pytest.mark.filterwarnings("ignore:loading .* with pickle because trust_pickle was given:UserWarning")
def test_library_sweep(tmp_path, own):
    for case, call, exc, pattern in _lib_cases(tmp_path, own):
        with pytest.raises(exc) as info:
            call()
        msg = str(info.value)
        assert "\n" not in msg, f"{case}: more than one line"
        assert re.fullmatch(pattern, msg), f"{case}: {msg}"


# ----------------------------------------------------------------------------------------------
# standardisation of tabular features (the "target that never learns" case)
# ----------------------------------------------------------------------------------------------
def test_standardize_features_against_scikit_learn():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    # wine-like scales: one column in the hundreds, one near 1, one constant on the fit rows
    X = np.column_stack([rng.normal(750, 300, 60), rng.normal(1.0, 0.2, 60), np.full(60, 5.0)])
    X[40:, 2] = rng.normal(0, 1, 20)  # varies only outside the fit rows
    fit = np.arange(0, 40)
    oracle = StandardScaler().fit(X[fit]).transform(X)  # sklearn also leaves zero-variance columns unscaled
    out = standardize_features(X, fit)
    assert out.shape == X.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, oracle, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[fit].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[fit, :2].std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(out[:, 2], X[:, 2] - 5.0)  # constant column: centred, std 1


def test_standardize_features_fits_only_on_fit_rows():
    rng = np.random.default_rng(2)
    X = rng.normal(10, 3, (50, 4)).astype(np.float32)
    before = X.copy()
    fit = np.sort(rng.choice(50, 20, replace=False))
    base = standardize_features(X, fit)
    np.testing.assert_array_equal(X, before)  # the input is not modified
    other = np.setdiff1d(np.arange(50), fit)
    X2 = X.copy()
    X2[other] = rng.normal(-500, 100, (other.size, 4)).astype(np.float32)  # change every other row
    moved = standardize_features(X2, fit)
    np.testing.assert_array_equal(moved[fit], base[fit])  # the statistics did not move
    mean = X[fit].astype(np.float64).mean(axis=0)
    std = X[fit].astype(np.float64).std(axis=0)
    np.testing.assert_allclose(moved[other], ((X2[other] - mean) / std).astype(np.float32), rtol=1e-6)
    assert base.dtype == np.float32 and not np.shares_memory(base, X)


def test_standardize_features_statistics_are_float64():
    # float32 data with a large offset: float32 accumulation would lose the small spread
    rng = np.random.default_rng(3)
    X = (1e4 + rng.normal(0, 0.01, (1000, 1))).astype(np.float32)
    out = standardize_features(X, np.arange(1000))
    Xd = X.astype(np.float64)
    np.testing.assert_allclose(out[:, 0], ((Xd - Xd.mean()) / Xd.std())[:, 0], rtol=1e-5, atol=1e-5)


def test_standardize_setting_round_trips(tmp_path):
    cfg = AuditConfig(standardize=True)
    assert AuditConfig().standardize is False
    assert cfg.to_dict()["standardize"] is True
    assert AuditConfig.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "s.toml").write_text("standardize = true\nattacks = [\"loss\"]\n")
    assert AuditConfig.from_toml(tmp_path / "s.toml") == AuditConfig(standardize=True, attacks=("loss",))


def test_audit_model_out_is_checked_before_anything_runs(own, tmp_path):
    (tmp_path / "f").write_text("not a directory")
    calls = []

    def model(X):
        calls.append(len(X))
        return own["est"].predict_proba(X)

    with pytest.raises(ValueError, match=r"^out must be a run directory, but .*f is an existing file"):
        audit_model(model, own["members"], own["nonmembers"], attacks=["correctness"], out=tmp_path / "f",
                    quiet=True)
    assert calls == []  # the model was never queried
