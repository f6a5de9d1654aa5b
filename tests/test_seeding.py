"""Tests of mialab.seeding: stable derived seeds, refusals, and that the library leaves the
caller's global RNG state (torch and numpy) exactly as it found it. CPU only, fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mialab.models import build_model
from mialab.seeding import check_seed, derive_seed, numpy_rng, torch_generator, torch_seeded
from mialab.training import TrainConfig, train_model

MAX_SEED = 2**63 - 1


@pytest.fixture
def restore_global_rng():
    """Tests below seed the global generators on purpose (playing the user); put them back."""
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    yield
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)


def numpy_states_equal(a: tuple, b: tuple) -> bool:
    """Compare two ``np.random.get_state()`` tuples (name, keys array, pos, has_gauss, gauss)."""
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


# ----------------------------------------------------------------------------------------------
# derive_seed
# ----------------------------------------------------------------------------------------------
def test_derive_seed_regression_values():
    # Hard-coded when these tests were written: a change here changes every split, every
    # initialisation and every shadow model of every saved audit, so it must be deliberate.
    assert derive_seed(0, "split") == 873905551522185122
    assert derive_seed(12345, "shadow", 3, "init") == 6568139497235436546


def test_derive_seed_is_deterministic_and_in_range():
    for root in (0, 1, 7, MAX_SEED):
        for purpose in (("split",), ("shadow", 0, "train"), ()):
            s = derive_seed(root, *purpose)
            assert type(s) is int
            assert 0 <= s <= MAX_SEED
            assert s == derive_seed(root, *purpose)
            check_seed(s)  # a derived seed is itself a valid root


def test_derive_seed_accepts_numpy_integers_like_ints():
    assert derive_seed(np.int64(5), "init") == derive_seed(5, "init")
    assert derive_seed(5, "shadow", np.int64(2)) == derive_seed(5, "shadow", 2)


def test_derive_seed_distinct_across_purposes_and_roots():
    purposes = [("split",), ("init",), ("order",), ("dropout",), ("target",), ()]
    purposes += [("shadow", k, part) for k in range(8) for part in ("train", "membership")]
    seeds = [derive_seed(root, *p) for root in range(20) for p in purposes]
    assert len(set(seeds)) == len(seeds)
    # order of the purpose parts matters
    assert derive_seed(0, "shadow", "init") != derive_seed(0, "init", "shadow")


def test_derive_seed_refuses_bad_root_naming_it():
    with pytest.raises(ValueError, match="root seed"):
        derive_seed(-1, "split")
    with pytest.raises(TypeError, match="root seed"):
        derive_seed(1.0, "split")


# ----------------------------------------------------------------------------------------------
# check_seed
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 1, 2**32, MAX_SEED, np.int64(3), np.uint32(4)])
def test_check_seed_accepts_non_negative_ints(value):
    out = check_seed(value)
    assert type(out) is int and out == int(value)


@pytest.mark.parametrize(
    "value, exc",
    [
        (-1, ValueError),
        (np.int64(-5), ValueError),
        (2**63, ValueError),
        (True, TypeError),
        (False, TypeError),
        (np.bool_(True), TypeError),
        (1.0, TypeError),
        (np.float64(2.0), TypeError),
        ("3", TypeError),
        (None, TypeError),
    ],
)
def test_check_seed_refusals_name_the_argument(value, exc):
    with pytest.raises(exc, match="my_seed"):
        check_seed(value, name="my_seed")


def test_check_seed_default_name_is_seed():
    with pytest.raises(ValueError, match=r"^seed must be in \[0, 2\*\*63 - 1\], got -3$"):
        check_seed(-3)


# ----------------------------------------------------------------------------------------------
# generators
# ----------------------------------------------------------------------------------------------
def test_numpy_rng_is_reproducible_and_checks_seed():
    assert np.array_equal(numpy_rng(3).random(5), numpy_rng(3).random(5))
    assert not np.array_equal(numpy_rng(3).random(5), numpy_rng(4).random(5))
    with pytest.raises(ValueError, match="seed"):
        numpy_rng(-1)


def test_torch_generator_is_reproducible_and_leaves_global_state():
    before = torch.get_rng_state()
    a = torch.rand(5, generator=torch_generator(3))
    b = torch.rand(5, generator=torch_generator(3))
    c = torch.rand(5, generator=torch_generator(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(TypeError, match="seed"):
        torch_generator(True)


# ----------------------------------------------------------------------------------------------
# torch_seeded: the caller's global torch RNG is unchanged
# ----------------------------------------------------------------------------------------------
def test_torch_seeded_restores_caller_state(restore_global_rng):
    torch.manual_seed(1234)  # the "user's" own seeding
    before = torch.get_rng_state()
    expected_next = torch.rand(4)  # what the caller would draw next ...
    torch.set_rng_state(before)  # ... rewound

    with torch_seeded(7):
        inside = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(torch.rand(4), expected_next)

    # the block itself is seeded: same seed, same draws, whatever the caller's state was
    torch.manual_seed(999)
    with torch_seeded(7):
        again = torch.rand(4)
    assert torch.equal(inside, again)
    with torch_seeded(8):
        other = torch.rand(4)
    assert not torch.equal(inside, other)


def test_torch_seeded_restores_state_on_error_and_refuses_bad_seed():
    before = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"):
        with torch_seeded(3):
            torch.rand(10)
            raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), before)

    with pytest.raises(ValueError, match="seed"):
        with torch_seeded(-1):
            pass  # pragma: no cover
    assert torch.equal(torch.get_rng_state(), before)


def test_derive_seed_keeps_purposes_apart():
    assert len({derive_seed(0, "shadow", 3), derive_seed(0, "shadow", "3"), derive_seed(0, "shadow/3")}) == 3
    with pytest.raises(TypeError, match="purpose"):
        derive_seed(0, 1.5)


def test_torch_seeded_makes_model_init_reproducible():
    def init() -> list[torch.Tensor]:
        with torch_seeded(11):
            return [p.detach().clone() for p in build_model("mlp", input_shape=(8,), n_classes=3).parameters()]

    a, b = init(), init()
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_torch_seeded_does_not_touch_cuda_rng(monkeypatch):
    # On a CPU-only machine the CUDA generator cannot be compared, so record whether the
    # library asks torch to reseed the CUDA devices at all.
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    with torch_seeded(5):
        torch.rand(1)
    assert calls == [], f"torch_seeded reseeded the CUDA RNG with {calls}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to read its RNG state")
def test_torch_seeded_leaves_cuda_rng_state():  # pragma: no cover - GPU only
    torch.cuda.manual_seed(2024)
    before = torch.cuda.get_rng_state()
    with torch_seeded(5):
        pass
    assert torch.equal(torch.cuda.get_rng_state(), before)


# ----------------------------------------------------------------------------------------------
# a whole training run leaves global state alone
# ----------------------------------------------------------------------------------------------
def test_train_model_leaves_global_numpy_and_torch_state_untouched(restore_global_rng):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)

    np.random.seed(321)
    torch.manual_seed(321)
    np_before = np.random.get_state()
    torch_before = torch.get_rng_state()
    expected_np = np.random.random(3)
    expected_torch = torch.rand(3)
    np.random.set_state(np_before)
    torch.set_rng_state(torch_before)

    train_model(lambda: build_model("mlp", input_shape=(6,), n_classes=2, width=8, dropout=0.3),
                X, y, config=TrainConfig(epochs=2, batch_size=16, early_stopping_patience=1),
                seed=3, validation=(X[:16], y[:16]), test=(X[16:], y[16:]))

    assert numpy_states_equal(np.random.get_state(), np_before)
    assert torch.equal(torch.get_rng_state(), torch_before)
    assert np.array_equal(np.random.random(3), expected_np)
    assert torch.equal(torch.rand(3), expected_torch)


# ----------------------------------------------------------------------------------------------
# the test suite's own seed, MIALAB_TEST_SEED (tests/_seeds.py)
# ----------------------------------------------------------------------------------------------
def test_suite_seed_parses_and_refuses(monkeypatch):
    import _seeds

    assert _seeds.parse_suite_seed(None) == 0 and _seeds.parse_suite_seed("") == 0
    assert _seeds.parse_suite_seed(" 17 ") == 17
    for bad in ("abc", "1.5", "-1", "0x10", str(_seeds.MAX_SUITE_SEED + 1)):
        with pytest.raises(ValueError, match=r"MIALAB_TEST_SEED must be a non-negative int.*got"):
            _seeds.parse_suite_seed(bad)
    monkeypatch.setenv("MIALAB_TEST_SEED", "2")
    assert _seeds.suite_seed() == 2
    assert [_seeds.seeded(s) for s in (0, 1, 999)] == [2000, 2001, 2999]
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 1000\), got 1000"):
        _seeds.seeded(1000)
    monkeypatch.delenv("MIALAB_TEST_SEED")
    assert _seeds.seeded(5) == 5  # unset: the seeds written in the tests


def test_suite_seed_gives_other_draws_and_never_reuses_one(monkeypatch):
    import _seeds

    draws = {}
    for value in ("0", "1", "2"):
        monkeypatch.setenv("MIALAB_TEST_SEED", value)
        draws[value] = {s: _seeds.seeded(s) for s in range(_seeds.STRIDE)}
        assert len(set(draws[value].values())) == _seeds.STRIDE  # purposes stay apart
    assert not set(draws["0"].values()) & set(draws["1"].values())
    assert not set(draws["1"].values()) & set(draws["2"].values())
    assert np.random.default_rng(draws["0"][0]).random() != np.random.default_rng(draws["1"][0]).random()
    monkeypatch.setenv("MIALAB_TEST_SEED", str(_seeds.MAX_SUITE_SEED))
    assert _seeds.seeded(_seeds.STRIDE - 1) < 2**31  # within every library's seed range


def test_malformed_suite_seed_stops_pytest_with_one_line():
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    env = dict(os.environ, MIALAB_TEST_SEED="seven")
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          str(tests / "_seeds.py")], cwd=tests.parent, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 4, run.stdout + run.stderr  # pytest's usage error
    assert "MIALAB_TEST_SEED must be a non-negative int, got 'seven'" in run.stderr
    assert "Traceback" not in run.stderr
