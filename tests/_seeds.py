"""The test suite's seed: ``MIALAB_TEST_SEED`` shifts every seed a statistical test draws from.

A statistical test (one whose assertion holds with high probability, not always) takes each of
its seeds through :func:`seeded`, so ``MIALAB_TEST_SEED=7 python -m pytest`` redraws its data,
models, attack randomness and bootstrap replicates, and its false-failure bound (written next
to each such assertion) can be checked by running the suite under many values. With the
default ``MIALAB_TEST_SEED=0`` every seed is the one written in the test.

Kept free of pytest so fixtures, module-level helpers and plain scripts can all import it
(``from _seeds import seeded``; pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os

#: the environment variable read by :func:`suite_seed`
ENV = "MIALAB_TEST_SEED"
#: seeds written in the tests lie in [0, STRIDE): shifting by multiples of it keeps the
#: purposes of one run (data, init, bootstrap, ...) on distinct seeds under every suite seed
STRIDE = 1000
#: largest accepted suite seed: shifted seeds stay below 2**31 (torch, numpy and the attacks'
#: ``random_state`` all accept them)
MAX_SUITE_SEED = (2**31 - 1) // STRIDE - 1


def parse_suite_seed(text: str | None) -> int:
    """The suite seed from the environment variable's text (``None``: unset, so 0).

    >>> parse_suite_seed(None), parse_suite_seed(" 12 ")
    (0, 12)
    """
    if text is None or text.strip() == "":
        return 0
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise ValueError(f"{ENV} must be a non-negative int, got {text!r}") from None
    if not 0 <= value <= MAX_SUITE_SEED:
        raise ValueError(f"{ENV} must be a non-negative int <= {MAX_SUITE_SEED}, got {value}")
    return value


def suite_seed() -> int:
    """The value of ``MIALAB_TEST_SEED`` (default 0), read now; ValueError if it is no int."""
    return parse_suite_seed(os.environ.get(ENV))


def seeded(seed: int) -> int:
    """``seed`` (a seed written in a test, 0 <= seed < STRIDE) shifted by the suite seed.

    Distinct written seeds stay distinct, and each suite seed gets seeds no other suite seed
    uses, so two values of ``MIALAB_TEST_SEED`` never share a draw.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < STRIDE:
        raise ValueError(f"seed must be an int in [0, {STRIDE}), got {seed!r}")
    return seed + STRIDE * suite_seed()
