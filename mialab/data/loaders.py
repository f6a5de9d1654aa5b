"""Built-in datasets by name, through a small registry.

>>> from mialab.data import load_dataset
>>> ds = load_dataset("digits")
>>> ds.n_records, ds.input_shape
(1797, (64,))

Image datasets are read from local files with the strict readers in :mod:`mialab.data.formats`;
nothing is downloaded unless ``download=True`` (which needs a network and torchvision, and puts
the files under ``root`` in torchvision's layout). Train and test files are concatenated, train
first, into one record space: the audit split draws its own parts.

Where files are looked for (first complete directory wins):

* ``mnist``:         ``root``, ``root/MNIST/raw``, ``/usr/share/datasets/mnist``
* ``fashion-mnist``: ``root``, ``root/FashionMNIST/raw``, ``/usr/share/datasets/fashion-mnist``
  (Debian: ``apt-get install dataset-fashion-mnist``)
* ``cifar10``:       ``root/cifar-10-batches-py``, ``root`` (root may be that folder itself)

``root`` defaults to :func:`default_root` (``$MIALAB_DATA``, else ``$XDG_DATA_HOME/mialab/data``,
else ``~/.local/share/mialab/data``: data, not a cache, so clearing the model cache keeps it).
The system-wide copies under ``/usr/share/datasets`` are searched only with that default: a
``root`` the caller names (``data_root``, ``--data-root``) must exist, unless ``download=True``
creates it, and is the only place searched, so the data audited is the data asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mialab.data.dataset import Dataset
from mialab.data.formats import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_cifar_batch, read_idx
from mialab.validation import check_bool, check_str

__all__ = ["load_dataset", "available_datasets", "default_root"]

Loader = Callable[[Path, bool, bool], Dataset]  # (root, download, search the system copies)
_LOADERS: dict[str, Loader] = {}

_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_CIFAR_FOLDER = "cifar-10-batches-py"


def _register(name: str) -> Callable[[Loader], Loader]:
    def add(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn
    return add


def available_datasets() -> tuple[str, ...]:
    """Names :func:`load_dataset` accepts, sorted."""
    return tuple(sorted(_LOADERS))


def default_root() -> Path:
    """``$MIALAB_DATA`` if set, else ``$XDG_DATA_HOME/mialab/data``, else
    ``~/.local/share/mialab/data`` (read at call time)."""
    env = os.environ.get("MIALAB_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "mialab" / "data"


def load_dataset(name: str, *, root: str | os.PathLike[str] | None = None,
                 download: bool = False) -> Dataset:
    """Load a built-in dataset by name (see :func:`available_datasets`).

    ``root`` is where files are looked for (and downloaded to); when given, it must be an
    existing directory (``download=True`` creates it) and it is the only place searched;
    ``None`` searches :func:`default_root` and then the system-wide copies (module docstring).
    ``download=True`` fetches missing files with torchvision, which needs a network. Raises
    ``ValueError`` for an unknown name (listing the known ones), ``FileNotFoundError`` for a
    named root that does not exist and, listing every directory searched, for missing files.
    """
    check_str(name, name="dataset name", non_empty=False)  # "" is an unknown name, listed below
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(available_datasets())}"
        ) from None
    download = check_bool(download, name="download")
    if root is None:
        return loader(default_root(), download, True)
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"data_root (root) must be a str or os.PathLike directory, got {root!r} "
                        f"({type(root).__name__})")
    where = Path(root).expanduser()
    if where.exists() and not where.is_dir():
        raise ValueError(f"data_root (root) must be a directory, got the file {str(where)!r}")
    if not where.exists() and not download:
        raise FileNotFoundError(
            f"data_root (root) {str(where)!r} does not exist: a data root you name must be an existing "
            f"directory (download=True / --download creates it and fetches the files); leave it unset to "
            f"search {default_root()} and the system-wide copies"
        )
    return loader(where, download, False)


# ----------------------------------------------------------------------------------------------
# finding files
# ----------------------------------------------------------------------------------------------
def _unique(dirs: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _locate(dirs: Sequence[Path], names: Sequence[str], *,
            gz_ok: bool) -> tuple[dict[str, Path] | None, list[str]]:
    """The first directory holding every file in ``names``, and a note per directory searched.

    A plain file is preferred over its ``.gz`` twin (torchvision keeps both).
    """
    notes: list[str] = []
    for d in _unique(dirs):
        if not d.is_dir():
            notes.append(f"{d} (no such directory)")
            continue
        found: dict[str, Path] = {}
        for stem in names:
            for cand in ((d / stem, d / f"{stem}.gz") if gz_ok else (d / stem,)):
                if cand.is_file():
                    found[stem] = cand
                    break
        missing = [s for s in names if s not in found]
        if not missing:
            return found, notes
        notes.append(f"{d} (missing {', '.join(missing)})")
    return None, notes


def _download(torchvision_class: str, root: Path) -> None:
    try:
        import torchvision.datasets as tvd  # lazy: only downloads need torchvision
    except ImportError as exc:
        raise ImportError("download=True needs torchvision: pip install torchvision") from exc
    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(tvd, torchvision_class)(str(root), train=True, download=True)
    except (OSError, RuntimeError) as exc:
        # FileNotFoundError: the files are still missing, and the command line reports it in
        # one line like any other missing input
        raise FileNotFoundError(
            f"downloading {torchvision_class} into {root} failed (a network is needed): {exc}"
        ) from exc


@dataclass(frozen=True)
class _Source:
    """How one file-based dataset is found, fetched and explained."""

    name: str
    dirs: Callable[[Path], list[Path]]
    files: tuple[str, ...]
    gz_ok: bool
    torchvision_class: str
    hints: tuple[str, ...] = ()
    system_key: str | None = None  # key of its system-wide copy in _SYSTEM_DIRS

    def find(self, root: Path, download: bool, system: bool) -> dict[str, Path]:
        def dirs() -> list[Path]:
            extra = [_SYSTEM_DIRS[self.system_key]] if system and self.system_key else []
            return self.dirs(root) + extra

        found, notes = _locate(dirs(), self.files, gz_ok=self.gz_ok)
        if found is None and download:
            _download(self.torchvision_class, root)
            found, notes = _locate(dirs(), self.files, gz_ok=self.gz_ok)
        if found is not None:
            return found
        suffix = " (each plain or gzipped .gz)" if self.gz_ok else ""
        how = [
            f"load_dataset({self.name!r}, root=..., download=True) or --download on the command "
            f"line fetches them with torchvision into {root} (needs a network)",
            *self.hints,
            f"or copy the files into {root}",
        ]
        raise FileNotFoundError(
            f"{self.name}: files not found. Searched:\n"
            + "".join(f"  - {n}\n" for n in notes)
            + f"Expected: {', '.join(self.files)}{suffix}.\nTo get them:\n"
            + "".join(f"  - {h}\n" for h in how)
        )


# ----------------------------------------------------------------------------------------------
# loaders
# ----------------------------------------------------------------------------------------------
_DIGIT_NAMES = tuple(str(i) for i in range(10))
_FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck")

# system-wide copies (Debian packages); a module-level dict so tests can point them elsewhere
_SYSTEM_DIRS = {
    "mnist": Path("/usr/share/datasets/mnist"),
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
}

_MNIST = _Source(
    name="mnist", files=_IDX_STEMS, gz_ok=True, torchvision_class="MNIST",
    dirs=lambda root: [root, root / "MNIST" / "raw"], system_key="mnist",
)
_FASHION = _Source(
    name="fashion-mnist", files=_IDX_STEMS, gz_ok=True, torchvision_class="FashionMNIST",
    dirs=lambda root: [root, root / "FashionMNIST" / "raw"], system_key="fashion-mnist",
    hints=("apt-get install dataset-fashion-mnist (Debian/Ubuntu) installs them in "
           "/usr/share/datasets/fashion-mnist (searched when no data root is named)",),
)
_CIFAR10 = _Source(
    name="cifar10", files=_CIFAR_FILES, gz_ok=False, torchvision_class="CIFAR10",
    dirs=lambda root: [root / _CIFAR_FOLDER, root],
)


def _read_idx_pair(images: Path, labels: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images, magic=IDX_IMAGES_MAGIC)
    y = read_idx(labels, magic=IDX_LABELS_MAGIC)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels")
    if y.size and y.max() >= n_classes:
        raise ValueError(f"{labels} holds label {y.max()}, expected labels in [0, {n_classes - 1}]")
    return x, y


def _load_idx(source: _Source, class_names: tuple[str, ...], root: Path,
              download: bool, system: bool) -> Dataset:
    files = source.find(root, download, system)
    k = len(class_names)
    xtr, ytr = _read_idx_pair(files[_IDX_STEMS[0]], files[_IDX_STEMS[1]], k)
    xte, yte = _read_idx_pair(files[_IDX_STEMS[2]], files[_IDX_STEMS[3]], k)
    if xtr.shape[1:] != xte.shape[1:]:
        raise ValueError(
            f"{files[_IDX_STEMS[0]]} holds images of shape {xtr.shape[1:]} but "
            f"{files[_IDX_STEMS[2]]} holds {xte.shape[1:]}"
        )
    X = np.concatenate([xtr, xte])[:, None].astype(np.float32)  # (n, 1, H, W)
    X /= 255.0
    y = np.concatenate([ytr, yte]).astype(np.int64)
    return Dataset(name=source.name, X=X, y=y, n_classes=k, kind="image",
                   class_names=class_names, source=str(files[_IDX_STEMS[0]].parent))


@_register("mnist")
def _load_mnist(root: Path, download: bool, system: bool) -> Dataset:
    return _load_idx(_MNIST, _DIGIT_NAMES, root, download, system)


@_register("fashion-mnist")
def _load_fashion_mnist(root: Path, download: bool, system: bool) -> Dataset:
    return _load_idx(_FASHION, _FASHION_NAMES, root, download, system)


@_register("cifar10")
def _load_cifar10(root: Path, download: bool, system: bool) -> Dataset:
    files = _CIFAR10.find(root, download, system)
    parts = [read_cifar_batch(files[f]) for f in _CIFAR_FILES]  # train batches, then test
    for f, (_, labels) in zip(_CIFAR_FILES, parts):
        if labels.size and (labels.min() < 0 or labels.max() >= 10):
            raise ValueError(f"{files[f]} holds labels outside [0, 9]")
    X = np.concatenate([x for x, _ in parts]).astype(np.float32)
    X /= 255.0
    y = np.concatenate([lab for _, lab in parts])
    return Dataset(name="cifar10", X=X, y=y, n_classes=10, kind="image",
                   class_names=_CIFAR10_NAMES, source=str(files[_CIFAR_FILES[0]].parent))


@_register("digits")
def _load_digits(root: Path, download: bool, system: bool) -> Dataset:
    # bundled with scikit-learn: root and download do not apply
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (np.asarray(bunch.data, dtype=np.float32) / 16.0).astype(np.float32)  # pixels are 0..16
    return Dataset(name="digits", X=X, y=np.asarray(bunch.target, dtype=np.int64), n_classes=10,
                   kind="tabular", class_names=_DIGIT_NAMES, source="sklearn.datasets.load_digits")
