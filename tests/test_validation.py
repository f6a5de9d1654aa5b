"""mialab.validation: what each check accepts and refuses, bool is never a number, numpy scalars
count as what they hold, and the message names the argument, the expected and the received value."""

from __future__ import annotations

import math
import numbers
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from mialab.validation import (
    Interval,
    Options,
    ParameterTypeError,
    check_bool,
    check_choice,
    check_int,
    check_real,
    check_reals,
    check_str,
    is_bool,
    is_int,
    is_real,
)


# ----------------------------------------------------------------------------------------------
# predicates
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, int_, real, bool_", [
    (3, True, True, False),
    (np.int64(3), True, True, False),
    (np.uint8(3), True, True, False),
    (3.0, False, True, False),
    (np.float32(0.5), False, True, False),
    (float("nan"), False, True, False),
    (Fraction(1, 2), False, True, False),
    (True, False, False, True),
    (np.bool_(False), False, False, True),
    ("3", False, False, False),
    (None, False, False, False),
    (np.array(3), False, False, False),  # a 0-d array is not a scalar here
    (1 + 0j, False, False, False),
])
def test_predicates(value, int_, real, bool_):
    assert (is_int(value), is_real(value), is_bool(value)) == (int_, real, bool_)


# ----------------------------------------------------------------------------------------------
# check_int
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1, 7, 2**70, np.int64(1), np.int32(5), np.uint64(9)])
def test_check_int_accepts_ints_and_returns_plain_int(value):
    out = check_int(value, name="n", low=1)
    assert type(out) is int and out == int(value)


@pytest.mark.parametrize("value, shown", [
    (True, "True (bool)"), (np.bool_(True), f"{np.bool_(True)!r} (bool)"), (1.0, "1.0 (float)"),
    ("1", "'1' (str)"), (None, "None (NoneType)"), (np.float64(2.0), f"{np.float64(2.0)!r} (float64)"),
])
def test_check_int_refuses_non_ints_with_a_type_error(value, shown):
    with pytest.raises(ParameterTypeError) as info:
        check_int(value, name="n_shadows", low=1)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert str(info.value) == f"n_shadows must be an int >= 1, got {shown}"


@pytest.mark.parametrize("kw, value, message", [
    ({"low": 1}, 0, "n must be an int >= 1, got 0"),
    ({"low": 1}, np.int64(-3), "n must be an int >= 1, got -3"),
    ({"high": 5}, 6, "n must be an int <= 5, got 6"),
    ({"low": 0, "high": 15}, 16, "n must be an int in [0, 15], got 16"),
    ({"low": 1, "high": 3, "hint": "the number of classes"}, 5,
     "n must be an int in [1, 3] (the number of classes), got 5"),
    ({"low": 1, "or_none": True}, 0, "n must be an int >= 1 or None, got 0"),
    ({"low": 1, "or_none": "all records"}, 0, "n must be an int >= 1 or None (all records), got 0"),
])
def test_check_int_range_errors_are_value_errors(kw, value, message):
    with pytest.raises(ValueError) as info:
        check_int(value, name="n", **kw)
    assert not isinstance(info.value, TypeError)
    assert str(info.value) == message


def test_check_int_bounds_are_inclusive_and_none_only_when_allowed():
    assert check_int(0, name="n", low=0, high=0) == 0
    assert check_int(-5, name="n") == -5
    assert check_int(None, name="n", or_none=True) is None
    with pytest.raises(ParameterTypeError, match=r"^n must be an int, got None \(NoneType\)$"):
        check_int(None, name="n")


# ----------------------------------------------------------------------------------------------
# check_real
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.25), np.float64(0.75), np.int64(1), Fraction(1, 3)])
def test_check_real_accepts_numbers_and_returns_plain_float(value):
    out = check_real(value, name="x", low=0.0, high=1.0)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None, [0.5], 1 + 0j])
def test_check_real_refuses_non_numbers(value):
    with pytest.raises(ParameterTypeError, match=r"^x must be a float in \(0, 1\), got .* \(\w+\)$"):
        check_real(value, name="x", low=0, high=1, closed="neither")


@pytest.mark.parametrize("closed, low_ok, high_ok", [
    ("both", True, True), ("left", True, False), ("right", False, True), ("neither", False, False),
])
def test_check_real_closed_ends(closed, low_ok, high_ok):
    for bound, ok in ((0.0, low_ok), (1.0, high_ok)):
        if ok:
            assert check_real(bound, name="x", low=0, high=1, closed=closed) == bound
        else:
            with pytest.raises(ValueError):
                check_real(bound, name="x", low=0, high=1, closed=closed)
    assert check_real(0.5, name="x", low=0, high=1, closed=closed) == 0.5


@pytest.mark.parametrize("kw, value, message", [
    ({"low": 0, "high": 1, "closed": "neither"}, 1.0, "delta must be a float in (0, 1), got 1.0"),
    ({"low": 0, "high": 1, "closed": "left"}, 1, "delta must be a float in [0, 1), got 1"),
    ({"low": 0, "high": 1, "closed": "right"}, np.float32(0.0), "delta must be a float in (0, 1], got 0.0"),
    ({"low": 0.0, "closed": "neither"}, 0.0, "delta must be a finite float > 0, got 0.0"),
    ({"low": 0.0}, -1e-3, "delta must be a finite float >= 0, got -0.001"),
    ({"high": 2.5, "closed": "neither"}, 3, "delta must be a finite float < 2.5, got 3"),
    ({}, math.inf, "delta must be a finite float, got inf"),
    ({}, math.nan, "delta must be a finite float, got nan"),
    ({"finite": False}, math.nan, "delta must be a float (+-inf allowed), got nan"),
    ({"low": 0, "finite": False}, -math.inf, "delta must be a float >= 0 (inf allowed), got -inf"),
    ({"low": 0, "high": 1, "closed": "neither", "or_none": "1 / (10 * n_train)"}, 2,
     "delta must be a float in (0, 1) or None (1 / (10 * n_train)), got 2"),
    ({"low": 0, "high": 1, "closed": "neither", "hint": "a probability"}, 2,
     "delta must be a float in (0, 1) (a probability), got 2"),
    ({"low": 1e-3, "high": 1e20}, 1e-4, "delta must be a float in [0.001, 1e+20], got 0.0001"),
])
def test_check_real_range_messages(kw, value, message):
    with pytest.raises(ValueError) as info:
        check_real(value, name="delta", **kw)
    assert not isinstance(info.value, TypeError)
    assert str(info.value) == message


def test_check_real_infinities_only_when_not_finite():
    assert check_real(math.inf, name="t", finite=False) == math.inf
    assert check_real(-math.inf, name="t", finite=False) == -math.inf
    assert check_real(math.inf, name="t", low=0, finite=False) == math.inf
    with pytest.raises(ValueError):
        check_real(math.inf, name="t", low=0)
    assert check_real(None, name="t", or_none=True) is None


# ----------------------------------------------------------------------------------------------
# check_reals
# ----------------------------------------------------------------------------------------------
def test_check_reals():
    assert check_reals([0.1, np.float32(0.5), 1], name="p", low=0, high=1) == (0.1, 0.5, 1.0)
    assert check_reals(np.array([0.25, 0.5]), name="p") == (0.25, 0.5)
    assert check_reals((), name="p") == ()
    with pytest.raises(ValueError, match=r"^p\[1\] must be a float in \(0, 1\), got 1.0$"):
        check_reals([0.5, 1.0], name="p", low=0, high=1, closed="neither")
    with pytest.raises(ParameterTypeError, match=r"^p\[0\] must be a float in \(0, 1\), got True \(bool\)$"):
        check_reals([True], name="p", low=0, high=1, closed="neither")
    for bad, shown in (("0.1", "'0.1' (str)"), (0.1, "0.1 (float)"), ({0.1}, "{0.1} (set)")):
        with pytest.raises(ParameterTypeError) as info:
            check_reals(bad, name="p", low=0, high=1, closed="neither")
        assert str(info.value) == f"p must be a sequence of floats in (0, 1), got {shown}"


# ----------------------------------------------------------------------------------------------
# check_bool, check_choice, check_str
# ----------------------------------------------------------------------------------------------
def test_check_bool():
    assert check_bool(True, name="flip") is True
    out = check_bool(np.bool_(False), name="flip")
    assert out is False
    for bad, shown in ((1, "1 (int)"), (0, "0 (int)"), ("yes", "'yes' (str)"), (None, "None (NoneType)"),
                       (np.int64(1), f"{np.int64(1)!r} (int64)")):
        with pytest.raises(ParameterTypeError) as info:
            check_bool(bad, name="flip")
        assert str(info.value) == f"flip must be a bool, got {shown}"
    with pytest.raises(TypeError, match=r"^standardize must be a bool \(true/false\), got 1 \(int\)$"):
        check_bool(1, name="standardize", hint="true/false")


def test_check_choice():
    assert check_choice("rdp", name="accountant", options=("prv", "rdp")) == "rdp"
    assert check_choice(2, name="k", options=[1, 2]) == 2
    assert check_choice(np.int64(2), name="k", options=[1, 2]) == 2
    with pytest.raises(ValueError, match=r"^accountant must be one of \['prv', 'rdp'\], got 'gdp'$"):
        check_choice("gdp", name="accountant", options=("prv", "rdp"))
    # bool is not the option 1, nor 1 the option True
    with pytest.raises(ValueError, match=r"^k must be one of \[1, 2\], got True$"):
        check_choice(True, name="k", options=[1, 2])
    with pytest.raises(ValueError):
        check_choice(1, name="flag", options=[True, False])
    # unhashable or array values are refused with the message, not a TypeError from `in`
    with pytest.raises(ValueError, match=r"^mask must be one of \['top-k'\], got \['top-k'\]$"):
        check_choice(["top-k"], name="mask", options=["top-k"])
    with pytest.raises(ValueError, match=r"got array"):
        check_choice(np.array([1, 2]), name="k", options=[1, 2])
    assert check_choice("b", name="x", options=Options(("a", "b"))) == "b"


def test_check_str():
    assert check_str("mnist", name="dataset") == "mnist"
    assert check_str("", name="dataset", non_empty=False) == ""
    with pytest.raises(ParameterTypeError, match=r"^name must be a non-empty str, got ''$"):
        check_str("", name="name")
    with pytest.raises(ParameterTypeError, match=r"^name must be a non-empty str, got 3 \(int\)$"):
        check_str(3, name="name")
    with pytest.raises(ParameterTypeError, match=r"^dataset name must be a str, got \['a'\] \(list\)$"):
        check_str(["a"], name="dataset name", non_empty=False)


# ----------------------------------------------------------------------------------------------
# constraints
# ----------------------------------------------------------------------------------------------
def test_interval_membership_and_description():
    pos = Interval(numbers.Integral, 1, None)
    assert 1 in pos and np.int8(3) in pos and 0 not in pos and True not in pos and 1.0 not in pos
    unit = Interval(numbers.Real, 0, 1, closed="neither")
    assert 0.5 in unit and np.float16(0.5) in unit and 0 not in unit and math.nan not in unit
    assert unit.describe() == "a float in (0, 1)"
    assert unit.describe(plural=True) == "floats in (0, 1)"
    assert Interval(numbers.Integral, None, None).describe() == "an int"
    with pytest.raises(ValueError, match="closed must be one of"):
        Interval(numbers.Real, 0, 1, closed="open")
    with pytest.raises(ValueError, match="low must be <= high"):
        Interval(numbers.Real, 1, 0)
    with pytest.raises(TypeError, match="kind must be"):
        Interval(float, 0, 1)


def test_messages_are_one_line_and_name_the_argument():
    cases = [
        lambda: check_int("x\ny", name="n_shadows", low=1),
        lambda: check_real(-1, name="n_shadows", low=0),
        lambda: check_bool(2, name="n_shadows"),
        lambda: check_choice("z", name="n_shadows", options="ab"),
    ]
    for call in cases:
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert msg.startswith("n_shadows must be ") and ", got " in msg and "\n" not in msg, msg


def test_importing_validation_loads_neither_torch_nor_other_mialab_modules():
    # compared with a bare `import mialab` (the package's own __init__ may load its version)
    code = ("import sys, mialab; before = set(sys.modules); import mialab.validation; "
            "bad = sorted(m for m in set(sys.modules) - before if m == 'torch' or m.startswith('torch.') "
            "or (m.startswith('mialab.') and m != 'mialab.validation')); "
            "bad += ['torch'] if 'torch' in sys.modules else []; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_check_file(tmp_path):
    from mialab.validation import ParameterTypeError, check_file

    f = tmp_path / "a.toml"
    f.write_text("x = 1\n")
    assert check_file(f, name="config file", kind="TOML file") == f
    assert check_file(str(f), name="config file") == f
    with pytest.raises(ValueError, match=r"^config file must be a TOML file, got the directory '.*'$"):
        check_file(tmp_path, name="config file", kind="TOML file")
    with pytest.raises(FileNotFoundError, match=r"^records file: no such file '.*nope.npz'$"):
        check_file(tmp_path / "nope.npz", name="records file")
    for bad in (3, "", None, True):
        with pytest.raises(ParameterTypeError, match=r"^records file must be a file path \(str or os.PathLike\), got"):
            check_file(bad, name="records file")
