"""Shared test setup."""

from __future__ import annotations

import pytest

from _seeds import ENV, suite_seed


def pytest_configure(config):
    """Refuse a malformed MIALAB_TEST_SEED before collecting anything (one clear line)."""
    try:
        suite_seed()
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None


def pytest_report_header(config):
    """Name the suite seed in the header, so a failing log says how to rerun it."""
    return f"{ENV}={suite_seed()} (shifts every seed of the statistical tests; see tests/_seeds.py)"


@pytest.fixture(scope="session")
def test_seed() -> int:
    """The suite seed, ``MIALAB_TEST_SEED`` (default 0): pass seeds through ``_seeds.seeded``."""
    return suite_seed()


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Run the suite single-threaded, then restore the thread counts.

    Every model and attack classifier in the tests is tiny; on a shared 2-core machine the
    OpenMP pools of PyTorch and scikit-learn oversubscribe the cores and spin (training a digits
    MLP was measured ~10x slower with 2 threads than with 1 under load). The thread count moves
    results at float level only, and every test compares runs made at this one count (the
    fleet backends set each task's count themselves); timings belong in benchmarks, not tests.
    """
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def cache_in_a_temporary_directory(tmp_path_factory):
    """The CLI caches trained models under $MIALAB_CACHE_DIR: keep the tests' out of $HOME."""
    import os

    old = os.environ.get("MIALAB_CACHE_DIR")
    os.environ["MIALAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("mialab-cache"))
    yield
    if old is None:
        os.environ.pop("MIALAB_CACHE_DIR", None)
    else:
        os.environ["MIALAB_CACHE_DIR"] = old
