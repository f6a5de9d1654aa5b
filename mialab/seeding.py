"""Derive child seeds from one root seed.

This is the only module that touches random-number-generator state. Library code receives a
seed (an ``int``) or a generator made here and never reseeds global state: where PyTorch insists
on its global generator (parameter initialisation inside ``nn.Module`` constructors, dropout),
:func:`torch_seeded` forks the global state, seeds the fork and restores the caller's state on
exit, so an audit leaves the user's RNG exactly as it found it.

Example
-------
>>> from mialab.seeding import derive_seed
>>> derive_seed(0, "split") == derive_seed(0, "split")
True
>>> derive_seed(0, "split") != derive_seed(0, "shadow", 3)
True
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from mialab.validation import ParameterTypeError, is_int

__all__ = ["derive_seed", "numpy_rng", "torch_generator", "torch_seeded", "check_seed", "record_uniforms"]

_MAX_SEED = 2**63 - 1


def check_seed(seed: object, *, name: str = "seed") -> int:
    """Return ``seed`` as a non-negative ``int``; ``TypeError`` for a non-int, ``ValueError``
    for one out of range, each naming ``name``."""
    # not check_int: the two messages predate mialab.validation and are documented (README)
    if not is_int(seed):
        raise ParameterTypeError(f"{name} must be a non-negative int, got {seed!r} ({type(seed).__name__})")
    if seed < 0 or seed > _MAX_SEED:
        raise ValueError(f"{name} must be in [0, 2**63 - 1], got {seed}")
    return int(seed)


def derive_seed(root: int, *purpose: object) -> int:
    """Derive a child seed for ``purpose`` from ``root``, stable across runs and platforms.

    ``purpose`` is any sequence of strings/ints naming what the seed is for, e.g.
    ``("shadow", 3, "init")``. Distinct purposes give statistically independent seeds; the
    mapping uses SHA-256, so it does not depend on Python's hash randomisation.
    """
    root = check_seed(root, name="root seed")
    for part in purpose:
        if not (isinstance(part, str) or is_int(part)):
            raise TypeError(f"purpose parts must be str or int, got {part!r} ({type(part).__name__})")
    # repr keeps ("shadow", 3), ("shadow", "3") and ("shadow/3",) apart; NUL cannot occur in a repr
    text = "\x00".join([str(root), *(repr(p if isinstance(p, str) else int(p)) for p in purpose)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & _MAX_SEED


def numpy_rng(seed: int) -> np.random.Generator:
    """A fresh ``numpy.random.Generator`` (PCG64) for ``seed``."""
    return np.random.default_rng(check_seed(seed))


def torch_generator(seed: int, device: Any = "cpu"):  # -> torch.Generator (torch imported lazily)
    """A fresh ``torch.Generator`` on ``device`` (default the CPU) seeded with ``seed``."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(check_seed(seed))
    return gen


@contextlib.contextmanager
def torch_seeded(seed: int, device: Any = None) -> Iterator[None]:
    """Run a block with PyTorch's global CPU RNG seeded to ``seed``, then restore it; with a
    CUDA ``device``, that GPU's generator too (``nn.Dropout`` on a GPU draws from it).

    Needed because ``nn.Module`` initialisation and ``nn.Dropout`` draw from the global
    generator. The caller's RNG state is unchanged after the block.
    """
    import torch

    cuda = device is not None and torch.device(device).type == "cuda"
    index = (torch.device(device).index or 0) if cuda else None
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[index] if cuda else []):
        # the CPU generator (and the one GPU's): torch.manual_seed would reseed every device's
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def record_uniforms(seed: int, record_ids: np.ndarray, *purpose: object) -> np.ndarray:
    """A pseudo-random number in ``[0, 1)`` per record id, ``(n,)`` float64, a function of
    ``(seed, purpose, id)`` alone.

    Random choices among records (which records score and which compare in a calibration
    split, which population records are kept) are keyed by it, so they do not depend on the
    order in which the records are listed, nor on which other records are present: an attack's
    scores depend on its records' content, never on their positions. ``derive_seed`` turns
    ``(seed, purpose)`` into a 64-bit key; each id XOR the key goes through the SplitMix64
    finaliser (Steele, Lea & Flood 2014), a bijection of 64-bit words that mixes every bit.

    >>> u = record_uniforms(0, np.array([5, 9, 7]), "split")
    >>> bool(((0 <= u) & (u < 1)).all()), record_uniforms(0, np.array([7, 5]), "split").tolist() == u[[2, 0]].tolist()
    (True, True)
    """
    key = np.uint64(derive_seed(seed, *purpose))
    z = np.atleast_1d(np.asarray(record_ids, dtype=np.int64)).astype(np.uint64) ^ key
    # uint64 arithmetic on arrays wraps modulo 2**64, as the finaliser intends
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
