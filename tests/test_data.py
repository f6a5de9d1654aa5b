"""Tests for mialab.data: file readers, loaders, Dataset, from_arrays/from_csv and the split.

All files are generated in tmp_path; nothing is downloaded. The real Fashion-MNIST test runs only
where Debian's dataset-fashion-mnist package is installed and skips with the reason otherwise.
"""

from __future__ import annotations

import gzip
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mialab.data import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    Dataset,
    available_datasets,
    default_root,
    from_arrays,
    from_csv,
    load_dataset,
    make_split,
    read_cifar_batch,
    read_idx,
    stratified_counts,
)
from mialab.data import loaders
from mialab.types import AuditSplit

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------------------------
# fixtures and writers
# ----------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_system_dirs(tmp_path_factory, monkeypatch):
    """Hide /usr/share/datasets from every test but the one about it, so results do not depend
    on what the machine has installed."""
    nowhere = tmp_path_factory.mktemp("no-system-dir") / "absent"
    monkeypatch.setitem(loaders._SYSTEM_DIRS, "mnist", nowhere / "mnist")
    monkeypatch.setitem(loaders._SYSTEM_DIRS, "fashion-mnist", nowhere / "fashion-mnist")
    monkeypatch.delenv("MIALAB_DATA", raising=False)


def write_idx(path: Path, arr: np.ndarray, magic: int, *, gz: bool) -> Path:
    raw = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw += np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def write_idx_set(folder: Path, *, gz: bool, n_train: int = 20, n_test: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    xtr = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    xte = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    ytr = np.arange(n_train, dtype=np.uint8) % 10
    yte = (np.arange(n_test, dtype=np.uint8) + 3) % 10
    arrays = (xtr, ytr, xte, yte)
    magics = (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC) * 2
    for stem, arr, magic in zip(IDX_STEMS, arrays, magics):
        write_idx(folder / stem, arr, magic, gz=gz)
    return np.concatenate([xtr, xte]), np.concatenate([ytr, yte])


def write_cifar(folder: Path, *, n_per_batch: int = 4, seed: int = 0, skip: str | None = None):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    datas, labels = [], []
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        lab = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        datas.append(data)
        labels.append(lab)
        if fname == skip:
            continue
        batch = {b"batch_label": f"{fname} of 6".encode(), b"labels": lab, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(n_per_batch)]}
        with (folder / fname).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
    return np.concatenate(datas), np.concatenate(labels)


# ----------------------------------------------------------------------------------------------
# IDX
# ----------------------------------------------------------------------------------------------
LAYOUTS = [("mnist", ""), ("mnist", "MNIST/raw"),
           ("fashion-mnist", ""), ("fashion-mnist", "FashionMNIST/raw")]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("name,sub", LAYOUTS)
def test_idx_loader_returns_what_was_written(tmp_path, name, sub, gz):
    folder = tmp_path / sub if sub else tmp_path
    images, labels = write_idx_set(folder, gz=gz)
    ds = load_dataset(name, root=tmp_path)
    assert ds.name == name and ds.kind == "image" and ds.n_classes == 10
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.X.shape == (30, 1, 28, 28) and ds.input_shape == (1, 28, 28) and ds.n_records == 30
    np.testing.assert_array_equal(ds.X[:, 0], images.astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y, labels)  # train first, then test
    assert ds.source == str(folder)
    assert len(ds.class_names) == 10
    assert not ds.X.flags.writeable


def test_idx_plain_file_preferred_over_gz(tmp_path):
    write_idx_set(tmp_path, gz=True, seed=1)
    images, _ = write_idx_set(tmp_path, gz=False, seed=2)
    np.testing.assert_array_equal(load_dataset("mnist", root=tmp_path).X[:, 0], images / np.float32(255))


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / "x", arr, IDX_IMAGES_MAGIC, gz=False)
    np.testing.assert_array_equal(read_idx(p, magic=IDX_IMAGES_MAGIC), arr)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_wrong_magic_names_file(tmp_path, gz):
    write_idx_set(tmp_path, gz=gz)
    # a labels file where images are expected: magic 0x801 instead of 0x803
    bad = write_idx(tmp_path / IDX_STEMS[0], np.zeros(20, np.uint8), IDX_LABELS_MAGIC, gz=gz)
    with pytest.raises(ValueError, match=r"magic number 0x00000801, expected 0x00000803") as e:
        load_dataset("mnist", root=tmp_path)
    assert str(bad) in str(e.value)


def test_idx_truncated_names_file(tmp_path):
    write_idx_set(tmp_path, gz=False)
    p = tmp_path / IDX_STEMS[2]
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(ValueError, match="file holds") as e:
        load_dataset("mnist", root=tmp_path)
    assert str(p) in str(e.value)
    p.write_bytes(p.read_bytes()[:6])  # shorter than the header
    with pytest.raises(ValueError, match="shorter than its 16-byte header"):
        read_idx(p, magic=IDX_IMAGES_MAGIC)


def test_idx_truncated_gzip_names_file(tmp_path):
    write_idx_set(tmp_path, gz=True)
    p = tmp_path / (IDX_STEMS[0] + ".gz")
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt gzip file") as e:
        load_dataset("fashion-mnist", root=tmp_path)
    assert str(p) in str(e.value)


def test_idx_label_count_mismatch(tmp_path):
    write_idx_set(tmp_path, gz=False)
    write_idx(tmp_path / IDX_STEMS[1], np.zeros(19, np.uint8), IDX_LABELS_MAGIC, gz=False)
    with pytest.raises(ValueError, match="20 images but .* 19 labels"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize("name,sub,system", [("mnist", "MNIST/raw", "/usr/share/datasets/mnist"),
                                             ("fashion-mnist", "FashionMNIST/raw",
                                              "dataset-fashion-mnist")])
def test_missing_idx_files_lists_searched_dirs(tmp_path, name, sub, system, monkeypatch):
    write_idx_set(tmp_path / sub, gz=False)
    (tmp_path / sub / IDX_STEMS[3]).unlink()
    # a root the caller names is the only place searched ...
    with pytest.raises(FileNotFoundError) as e:
        load_dataset(name, root=tmp_path)
    msg = str(e.value)
    for d in [tmp_path, tmp_path / sub]:
        assert f"  - {d} (" in msg
    assert f"  - {loaders._SYSTEM_DIRS[name]} (" not in msg
    assert f"missing {IDX_STEMS[3]}" in msg and "download=True" in msg and "--download" in msg
    if name == "fashion-mnist":
        assert "apt-get install dataset-fashion-mnist" in msg
    # ... the default root is searched before the system-wide copy
    monkeypatch.setenv("MIALAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        load_dataset(name)
    for d in [tmp_path, tmp_path / sub, loaders._SYSTEM_DIRS[name]]:
        assert f"  - {d} (" in str(e.value)


def test_named_root_must_exist_and_is_the_only_place_searched(tmp_path, monkeypatch):
    system = tmp_path / "system"
    write_idx_set(system, gz=False)
    monkeypatch.setitem(loaders._SYSTEM_DIRS, "fashion-mnist", system)
    monkeypatch.setenv("MIALAB_DATA", str(tmp_path / "unset-default"))
    assert load_dataset("fashion-mnist").source == str(system)  # no root named: the system copy
    with pytest.raises(FileNotFoundError, match=r"data_root \(root\) '/nonexistent-mialab' does not exist"):
        load_dataset("fashion-mnist", root="/nonexistent-mialab")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="files not found"):
        load_dataset("fashion-mnist", root=tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"data_root \(root\) must be a directory, got the file"):
        load_dataset("fashion-mnist", root=tmp_path / "file")
    with pytest.raises(TypeError, match="download must be a bool, got 'no'"):
        load_dataset("fashion-mnist", download="no")
    with pytest.raises(TypeError, match="dataset name must be a str, got 3"):
        load_dataset(3)


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MIALAB_DATA", str(tmp_path))
    assert default_root() == tmp_path
    images, _ = write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=True)
    assert load_dataset("fashion-mnist").n_records == images.shape[0]
    monkeypatch.delenv("MIALAB_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "mialab" / "data"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_root() == Path.home() / ".local" / "share" / "mialab" / "data"  # data, not a cache


def test_download_uses_torchvision_then_our_reader(tmp_path, monkeypatch):
    calls = []

    def fake_fashion(root, train, download):  # stands in for torchvision.datasets.FashionMNIST
        calls.append((root, train, download))
        write_idx_set(Path(root) / "FashionMNIST" / "raw", gz=False)

    tv = types.ModuleType("torchvision")
    tv.datasets = types.SimpleNamespace(FashionMNIST=fake_fashion)
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", tv.datasets)
    root = tmp_path / "new"
    with pytest.raises(FileNotFoundError):
        load_dataset("fashion-mnist", root=root)
    assert calls == []
    ds = load_dataset("fashion-mnist", root=root, download=True)
    assert calls == [(str(root), True, True)] and ds.n_records == 30
    load_dataset("fashion-mnist", root=root, download=True)
    assert len(calls) == 1  # present files are not fetched again


def test_real_fashion_mnist(monkeypatch):
    if not all((DEBIAN_FASHION / f"{s}.gz").is_file() or (DEBIAN_FASHION / s).is_file()
               for s in IDX_STEMS):
        pytest.skip(f"Fashion-MNIST not installed in {DEBIAN_FASHION} "
                    "(apt-get install dataset-fashion-mnist)")
    monkeypatch.setitem(loaders._SYSTEM_DIRS, "fashion-mnist", DEBIAN_FASHION)
    monkeypatch.setenv("MIALAB_DATA", "/nonexistent-mialab-root")  # default root empty: the system copy
    ds = load_dataset("fashion-mnist")
    assert ds.n_records == 70_000 and ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    assert ds.source == str(DEBIAN_FASHION)
    np.testing.assert_array_equal(ds.class_counts(), np.full(10, 7000))
    assert 0.0 <= ds.X.min() and ds.X.max() == 1.0


# ----------------------------------------------------------------------------------------------
# CIFAR-10
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("point_at_folder", [False, True])
def test_cifar10_layout_and_channel_order(tmp_path, point_at_folder):
    folder = tmp_path / "cifar-10-batches-py"
    data, labels = write_cifar(folder)
    ds = load_dataset("cifar10", root=folder if point_at_folder else tmp_path)
    assert ds.X.shape == (24, 3, 32, 32) and ds.n_classes == 10 and ds.kind == "image"
    np.testing.assert_array_equal(ds.y, labels)
    # record 5, channel G (1), row 7, column 11 sits at byte 1024 + 7 * 32 + 11
    assert ds.X[5, 1, 7, 11] == np.float32(data[5, 1024 + 7 * 32 + 11]) / np.float32(255)
    np.testing.assert_array_equal(ds.X[:, 2].reshape(24, -1) * 255,
                                  data[:, 2048:].astype(np.float32))
    assert ds.class_names[0] == "airplane"


def test_cifar10_missing_batch_lists_dirs(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", skip="data_batch_3")
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("cifar10", root=tmp_path)
    msg = str(e.value)
    assert f"  - {tmp_path / 'cifar-10-batches-py'} (missing data_batch_3)" in msg
    assert f"  - {tmp_path} (missing data_batch_1" in msg and "download=True" in msg


def test_cifar_refuses_foreign_globals(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load global (__builtin__|builtins)\.print") as e:
        read_cifar_batch(p)
    assert str(p) in str(e.value)
    assert "must never run" not in capsys.readouterr().out


def test_cifar_bad_content_names_file(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"uint8 \(n, 3072\)") as e:
        read_cifar_batch(p)
    assert str(p) in str(e.value)
    p.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="corrupt CIFAR-10 batch"):
        read_cifar_batch(p)


# ----------------------------------------------------------------------------------------------
# registry, digits
# ----------------------------------------------------------------------------------------------
def test_unknown_name_lists_known():
    with pytest.raises(ValueError) as e:
        load_dataset("imagenet")
    for name in ("cifar10", "digits", "fashion-mnist", "mnist"):
        assert name in str(e.value)
    assert set(available_datasets()) == {"cifar10", "digits", "fashion-mnist", "mnist"}


def test_digits():
    ds = load_dataset("digits")
    assert ds.X.shape == (1797, 64) and ds.kind == "tabular" and ds.X.dtype == np.float32
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0 and ds.n_classes == 10


# ----------------------------------------------------------------------------------------------
# Dataset, from_arrays, from_csv
# ----------------------------------------------------------------------------------------------
def test_from_arrays_infers_kind_and_converts():
    img = from_arrays(np.random.default_rng(0).random((6, 3, 4, 4)), [0, 1, 2, 0, 1, 2])
    assert img.kind == "image" and img.input_shape == (3, 4, 4) and img.X.dtype == np.float32
    tab = from_arrays(np.arange(12, dtype=np.int32).reshape(6, 2), np.array([0.0, 1.0] * 3),
                      name="t")
    assert tab.kind == "tabular" and tab.X.dtype == np.float32 and tab.y.dtype == np.int64
    np.testing.assert_array_equal(tab.X, np.arange(12).reshape(6, 2))
    assert tab.n_classes == 2 and tab.name == "t"
    assert "n_records=6" in repr(tab)


@pytest.mark.parametrize("X,y,kw,err,match", [
    (np.zeros((3, 2)), [0, 1], {}, ValueError, "same length, got 3 and 2"),
    (np.zeros((2, 2, 2)), [0, 1], {}, ValueError, "4-D .* or 2-D .* got shape"),
    (np.array([[0.0], [np.nan]]), [0, 1], {}, ValueError, "Dataset.X must be finite"),
    (np.array([[np.inf], [0.0]]), [0, 1], {}, ValueError, "Dataset.X must be finite"),
    (np.array([["a"], ["b"]]), [0, 1], {}, TypeError, "X must be numeric"),
    (np.zeros((2, 1)), [0.0, 1.5], {}, ValueError, "integer-valued.*1.5"),
    (np.zeros((2, 1)), [0, -1], {}, ValueError, "non-negative"),
    (np.zeros((2, 1)), [0, 3], {"n_classes": 3}, ValueError, r"y must lie in \[0, 2\]"),
    (np.zeros((2, 1)), [1, 1], {}, ValueError, "at least 2 classes"),
    (np.zeros((2, 1)), ["a", "b"], {}, TypeError, "integer labels"),
    (np.full((2, 1, 2, 2), 255.0), [0, 1], {}, ValueError, r"scaled to \[0, 1\]"),
    (np.zeros((2, 3)), [0, 1], {"kind": "image"}, ValueError, "must be 4-D"),
    (np.zeros((2, 1)), [0, 1], {"class_names": ("a",)}, ValueError, "class_names"),
])
def test_from_arrays_rejects(X, y, kw, err, match):
    with pytest.raises(err, match=match):
        from_arrays(X, y, **kw)


def test_dataset_validates_directly():
    with pytest.raises(TypeError, match="Dataset.X must be floating point"):
        Dataset(name="d", X=np.zeros((2, 2), np.int64), y=np.array([0, 1]), n_classes=2,
                kind="tabular")
    with pytest.raises(ValueError, match="Dataset.kind"):
        Dataset(name="d", X=np.zeros((2, 2)), y=np.array([0, 1]), n_classes=2, kind="audio")
    ds = Dataset(name="d", X=np.zeros((2, 2)), y=np.array([0, 1]), n_classes=3, kind="tabular")
    assert ds.X.dtype == np.float32 and not ds.y.flags.writeable
    np.testing.assert_array_equal(ds.class_counts(), [1, 1, 0])


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_from_csv_string_labels(tmp_path):
    p = write_csv(tmp_path / "iris.csv",
                  "a,species,b\n1,setosa,2.5\n3,virginica,4\n5,setosa,-6\n\n7,versicolor,8\n")
    with pytest.raises(ValueError, match="got 'setosa'"):  # names only when asked for
        from_csv(p, label_column="species")
    ds = from_csv(p, label_column="species", class_names=True)
    assert ds.name == "iris" and ds.kind == "tabular" and ds.source == str(p)
    assert ds.class_names == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(ds.y, [0, 2, 0, 1])
    np.testing.assert_array_equal(ds.X, [[1, 2.5], [3, 4], [5, -6], [7, 8]])


def test_from_csv_integer_labels(tmp_path):
    p = write_csv(tmp_path / "d.csv", "x,label\n0.5,2\n1.5,0\n2.5,10.0\n")
    ds = from_csv(p, label_column="label", name="mine")
    assert ds.name == "mine" and ds.class_names is None and ds.n_classes == 11
    np.testing.assert_array_equal(ds.y, [2, 0, 10])
    # as names, explicitly: sorted as strings
    named = from_csv(p, label_column="label", class_names=True)
    assert named.class_names == ("0", "10.0", "2") and named.y.tolist() == [2, 0, 1]


@pytest.mark.parametrize("text,match", [
    ("x,y\n1,0\n2,1\n", r"label_column 'label' not found .*columns found: \['x', 'y'\]"),
    ("x,label\n1,0\nabc,1\n", r"column 'x' row 2 must be numeric, got 'abc'"),
    ("x,label\n1,0\nnan,1\n", r"column 'x' row 2 must be a finite number .*got 'nan'"),
    ("x,label\n1,0\n1e39,1\n", r"column 'x' row 2 must be a finite number \(in float32 range\), got '1e39'"),
    ("x,label\n1,0\n2\n", "data row 2 has 1 fields, expected 2"),
    ("x,label\n1,0\n2,\n", "column 'label' row 2 is empty"),
    ("x,label\n", "no data rows"),
    ("x,label\n1,a\n2,a\n", r"row 1 must be a non-negative integer class index, got 'a' .*class_names=True"),
    ("x,label\n1,0\n2,-1\n", r"row 2 must be a non-negative integer class index, got '-1'"),
    ("x,label\n1,0\n2,0.5\n", r"row 2 must be a non-negative integer class index, got '0.5'"),
    ("x,label\n1,0\n2,inf\n", r"got 'inf'"),
    ("x,label\n1,0\n2,100000\n", r"class index below 100000, got '100000'"),
    ("x,label,label\n1,0,1\n2,1,0\n", "must name one column .* got 2 columns"),
    ("x,label\n1,1\n2,1\n", "at least 2 classes"),
])
def test_from_csv_rejects(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        from_csv(write_csv(tmp_path / "bad.csv", text), label_column="label")


# ----------------------------------------------------------------------------------------------
# the audit split
# ----------------------------------------------------------------------------------------------
def imbalanced_labels(n: int = 3000, seed: int = 0) -> np.ndarray:
    y = np.repeat(np.arange(4), [n // 2, 3 * n // 10, n // 10, n - n // 2 - 3 * n // 10 - n // 10])
    return np.random.default_rng(seed).permutation(y)


PARTS = ("members", "train_rest", "validation", "nonmembers", "test", "pool", "reference")


@pytest.mark.parametrize("kw,sizes", [
    ({}, {"members": 200, "train_rest": 800, "validation": 0, "nonmembers": 200, "test": 300,
          "pool": 1500, "reference": 0}),
    ({"n_target_train": 500, "member_fraction": 0.3, "n_test": 100, "n_validation": 50},
     {"members": 150, "train_rest": 300, "validation": 50, "nonmembers": 150, "test": 100,
      "pool": 2250, "reference": 0}),
    ({"n_reference": 400},
     {"members": 200, "train_rest": 800, "validation": 0, "nonmembers": 200, "test": 300,
      "pool": 1100, "reference": 400}),
])
def test_split_is_a_partition_with_the_specified_sizes(kw, sizes):
    y = imbalanced_labels()
    split = make_split(y, seed=3, **kw)
    assert split.sizes() == sizes and split.seed == 3 and split.n_records == y.size
    everything = np.concatenate([getattr(split, p) for p in PARTS])
    assert np.unique(everything).size == everything.size == y.size  # disjoint, covers range(n)
    assert everything.min() >= 0 and everything.max() < y.size
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1:]:
            assert np.intersect1d(getattr(split, a), getattr(split, b)).size == 0, (a, b)


def test_split_is_stratified():
    y = imbalanced_labels()
    split = make_split(y, n_target_train=900, member_fraction=0.2, n_validation=90, seed=0)
    props = lambda ids: np.bincount(y[ids], minlength=4) / ids.size  # noqa: E731
    target_train = np.concatenate([split.target_train, split.validation])
    n_mem = split.members.size
    # largest remainder: every class count is within 1 of its exact quota
    assert np.abs(props(split.members) - props(target_train)).max() <= 1 / n_mem + 1e-12
    assert np.abs(props(target_train) - props(np.arange(y.size))).max() <= 1 / 900 + 1e-12
    np.testing.assert_array_equal(np.bincount(y[split.members], minlength=4),
                                  np.bincount(y[split.nonmembers], minlength=4))
    assert np.abs(props(split.test) - props(np.arange(y.size))).max() < 0.02


def test_split_reproducible_and_seed_dependent():
    y = imbalanced_labels()
    a, b, c = (make_split(y, seed=s) for s in (7, 7, 8))
    for p in PARTS:
        np.testing.assert_array_equal(getattr(a, p), getattr(b, p))
    assert not np.array_equal(a.members, c.members) and not np.array_equal(a.pool, c.pool)
    # parts have their own sub-seeds: a different test size leaves the members alone
    d = make_split(y, seed=7, n_test=50)
    np.testing.assert_array_equal(a.members, d.members)
    np.testing.assert_array_equal(a.nonmembers, d.nonmembers)
    assert AuditSplit.from_dict(a.to_dict()).to_dict() == a.to_dict()


def test_split_does_not_touch_global_rng():
    state = np.random.get_state()
    make_split(imbalanced_labels(), seed=1)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1])


def test_split_at_least_one_member_per_class():
    y = np.array([0] * 190 + [1] * 5 + [2] * 5)  # rare classes
    split = make_split(y, n_target_train=60, member_fraction=0.05, n_test=10, seed=0)
    assert set(y[split.members]) == {0, 1, 2} and split.members.size == 3


@pytest.mark.parametrize("kw,err,match", [
    ({"member_fraction": 0.0}, ValueError, r"member_fraction must be a float in \(0, 1\), got 0.0"),
    ({"member_fraction": 1.0}, ValueError, "member_fraction"),
    ({"member_fraction": True}, ValueError, "member_fraction"),
    ({"n_target_train": 0}, ValueError, "n_target_train must be an int >= 1, got 0"),
    ({"n_target_train": 10.0}, ValueError, "n_target_train must be an int"),
    ({"n_target_train": 2500}, ValueError, r"needs 3508 records .* but y has 3000"),
    ({"n_test": 0}, ValueError, "n_test must be an int >= 1"),
    ({"n_test": 2000}, ValueError, "needs .* n_test=2000 .* but y has 3000"),
    ({"n_validation": -1}, ValueError, "n_validation must be an int >= 0"),
    ({"n_validation": 801}, ValueError, "n_validation must leave room for the 200 members"),
    ({"n_target_train": 10, "member_fraction": 0.2}, ValueError, "at least one per class"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": "0"}, TypeError, "seed"),
])
def test_split_rejects_bad_arguments(kw, err, match):
    kw = {"seed": 0, **kw}
    with pytest.raises(err, match=match):
        make_split(imbalanced_labels(), **kw)


def test_split_rejects_bad_labels_and_tiny_pools():
    with pytest.raises(ValueError, match="at least 2 classes"):
        make_split(np.zeros(100, int), seed=0)
    with pytest.raises(ValueError, match="integer labels"):
        make_split(np.zeros(100), seed=0)
    # 24 records, 2 classes: 12 train + 2 nonmembers + 6 test + pool 4 = 24 fits, one more not
    y = np.arange(24) % 2
    assert make_split(y, n_target_train=12, member_fraction=1 / 6, n_test=6, seed=0).pool.size == 4
    with pytest.raises(ValueError, match="pool of at least 2 \\* n_classes=4"):
        make_split(y, n_target_train=12, member_fraction=1 / 6, n_test=7, seed=0)
    # a class without enough records outside the target's training set to match its members
    y = np.array([0] * 112 + [1] * 3)
    with pytest.raises(ValueError, match="class 1 has 1 record.* but 2 member"):
        make_split(y, n_target_train=58, member_fraction=0.9, n_test=1, seed=0)


def test_stratified_counts_rule():
    assert stratified_counts([50, 30, 20], 7).tolist() == [4, 2, 1]
    assert stratified_counts([5, 5], 3).tolist() == [2, 1]  # exact tie: the lower label
    assert stratified_counts([100, 1, 1], 3, at_least_one=True).tolist() == [1, 1, 1]
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 50, rng.integers(2, 8))
        k = int(rng.integers(0, counts.sum() + 1))
        alloc = stratified_counts(counts, k)
        assert alloc.sum() == k and (alloc <= counts).all() and (alloc >= 0).all()
        assert np.abs(alloc - counts * k / max(counts.sum(), 1)).max() < 1
    with pytest.raises(ValueError, match="k must be in"):
        stratified_counts([1, 2], 4)
    with pytest.raises(ValueError, match="too small for one draw per class"):
        stratified_counts([5, 5, 5], 2, at_least_one=True)
