"""Strict readers for the two on-disk formats the built-in loaders use.

* IDX (MNIST, Fashion-MNIST; http://yann.lecun.com/exdb/mnist/): a big-endian header
  ``0x00 0x00 <type> <ndim>``, ``ndim`` uint32 sizes, then the data, row-major. Only unsigned
  bytes (type ``0x08``) occur in these datasets, so the reader expects exactly
  ``0x00000803`` (images, ``(n, rows, cols)``) or ``0x00000801`` (labels, ``(n,)``) and checks
  that the file holds exactly as many bytes as the header announces. Files may be gzipped.
* CIFAR-10 "python version": pickled dicts with ``b"data"`` (``(n, 3072)`` uint8; per image
  1024 red, then 1024 green, then 1024 blue bytes, each plane 32x32 row-major) and
  ``b"labels"`` (a list of n ints).

Pickle can run arbitrary code while loading, so CIFAR batches must come from a trusted source
(the official archive, or torchvision's download of it). As a second line of defence the
unpickler here only resolves the few globals a numpy array needs and refuses everything else;
the loaders only open files named exactly as the official layout says.

Every error names the file it is about.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "read_idx", "read_cifar_batch"]

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
_IDX_NDIM = {IDX_IMAGES_MAGIC: 3, IDX_LABELS_MAGIC: 1}

CIFAR_SIDE = 32
CIFAR_BYTES = 3 * CIFAR_SIDE * CIFAR_SIDE


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if its name ends in ``.gz``."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"corrupt gzip file {path}: {exc}") from exc


def read_idx(path: str | Path, *, magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, checking it against ``magic``.

    Parameters
    ----------
    path:  the file, plain or gzipped (name ending in ``.gz``).
    magic: :data:`IDX_IMAGES_MAGIC` (returns uint8 ``(n, rows, cols)``) or
           :data:`IDX_LABELS_MAGIC` (returns uint8 ``(n,)``).

    Raises ``ValueError`` naming the file when the magic number, the header or the size is wrong.
    """
    if magic not in _IDX_NDIM:
        raise ValueError(
            f"magic must be IDX_IMAGES_MAGIC (0x{IDX_IMAGES_MAGIC:08x}) or IDX_LABELS_MAGIC "
            f"(0x{IDX_LABELS_MAGIC:08x}), got 0x{magic:08x}"
        )
    path = Path(path)
    raw = _read_bytes(path)
    ndim = _IDX_NDIM[magic]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"corrupt IDX file {path}: {len(raw)} bytes, shorter than its {header_len}-byte header"
        )
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise ValueError(
            f"corrupt IDX file {path}: magic number 0x{got_magic:08x}, expected 0x{magic:08x}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise ValueError(
            f"corrupt IDX file {path}: header announces shape {dims} ({expected} bytes), "
            f"file holds {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only what a pickled numpy array (and protocol-2 bytes) needs."""

    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 stores bytes when written by Python 3
    })

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR batch holds only numpy arrays"
            )
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: uint8 images ``(n, 3, 32, 32)`` and int64 labels ``(n,)``.

    The file must come from a trusted source (see the module docstring); it is loaded as
    ``pickle.load(f, encoding="bytes")`` would, with globals restricted to numpy's.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"corrupt CIFAR-10 batch {path}: {exc}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"corrupt CIFAR-10 batch {path}: expected a dict with b'data' and b'labels', got {keys}"
        )
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_BYTES:
        raise ValueError(
            f"corrupt CIFAR-10 batch {path}: b'data' must be uint8 (n, {CIFAR_BYTES}), "
            f"got {data.dtype} {data.shape}"
        )
    labels = np.asarray(batch[b"labels"])
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"corrupt CIFAR-10 batch {path}: b'labels' must be {data.shape[0]} ints, "
            f"got {labels.dtype} {labels.shape}"
        )
    # channel-major: the 3072 bytes are the R plane, then G, then B, each 32x32 row-major
    images = data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    return images, labels.astype(np.int64)
