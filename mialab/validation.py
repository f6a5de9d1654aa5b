"""Parameter validation: one place for "is this an int >= 1", "a float in (0, 1)", "a bool".

In the spirit of scikit-learn's ``sklearn/utils/_param_validation.py``: a constraint is a small
object (:class:`Interval`, :class:`Options`) that can test a value and describe itself, and the
functions callers use (:func:`check_int`, :func:`check_real`, :func:`check_bool`,
:func:`check_choice`, :func:`check_str`, :func:`check_reals`) build the constraint, test the value
and return it as a plain Python object, or raise with a one-line message that names the
argument, what was expected and what was received::

    n_shadows must be an int >= 1, got 0
    n_shadows must be an int >= 1, got True (bool)
    delta must be a float in (0, 1) or None (1 / (10 * n_train)), got 1.5

Rules shared by every check:

- ``bool`` is never a number: ``True`` is refused where an int or a float is expected (Python
  would read it as 1, which hides a swapped argument).
- numpy scalars count as what they hold: ``np.int64(3)`` is an int, ``np.float32(0.5)`` a float,
  ``np.bool_(True)`` a bool. The checks return plain ``int``/``float``/``bool``.
- a value of the wrong type raises :class:`ParameterTypeError`, a subclass of both ``TypeError``
  and ``ValueError`` (scikit-learn's ``InvalidParameterError`` is both as well): mialab's
  boundaries historically raised one or the other for a wrong type, and callers that catch
  either keep working. A value of the right type outside its range raises ``ValueError``.
- NaN is never a valid number; infinities only where ``finite=False``.

This module sits at the bottom of the package: it imports only the standard library and numpy.

Example
-------
>>> from mialab.validation import check_int, check_real
>>> check_int(3, name="n_shadows", low=1)
3
>>> check_real(0, name="weight_decay", low=0.0)
0.0
>>> check_int(0, name="n_shadows", low=1)
Traceback (most recent call last):
...
ValueError: n_shadows must be an int >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "ParameterTypeError",
    "Interval",
    "Options",
    "is_int",
    "is_real",
    "is_bool",
    "check_int",
    "check_real",
    "check_reals",
    "check_bool",
    "check_choice",
    "check_str",
    "check_file",
]

Closed = Literal["left", "right", "both", "neither"]
_CLOSED = ("left", "right", "both", "neither")


class ParameterTypeError(TypeError, ValueError):
    """A parameter of the wrong type (a str where an int is expected, ``True`` for a count).

    Both a ``TypeError`` and a ``ValueError``: see the module docstring.
    """


# ----------------------------------------------------------------------------------------------
# type predicates
# ----------------------------------------------------------------------------------------------
def is_bool(value: object) -> bool:
    """``True`` for ``bool`` and ``np.bool_``."""
    return isinstance(value, (bool, np.bool_))


def is_int(value: object) -> bool:
    """``True`` for an integer (``int``, numpy integers), never for a bool."""
    return isinstance(value, numbers.Integral) and not is_bool(value)


def is_real(value: object) -> bool:
    """``True`` for a real number (``int``, ``float``, numpy integers and floats), never for a
    bool. NaN and infinities are real numbers here; the range checks refuse them."""
    return isinstance(value, numbers.Real) and not is_bool(value)


# ----------------------------------------------------------------------------------------------
# formatting
# ----------------------------------------------------------------------------------------------
def _num(x: float) -> str:
    """A bound as written in a message: ``0.0`` -> ``0``, ``1e-3`` -> ``0.001``, ``inf``."""
    if isinstance(x, numbers.Integral):
        return str(int(x))
    x = float(x)
    if math.isfinite(x) and x == int(x) and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _type_got(value: object) -> str:
    return f"got {value!r} ({type(value).__name__})"


def _plain(value: Any) -> Any:
    """``np.int64(3)`` -> ``3``, ``np.float32(0.5)`` -> ``0.5``: numpy scalars as Python
    numbers, so a message reads ``got 3``, not ``got np.int64(3)``."""
    if is_int(value):
        return int(value)
    if is_real(value):
        return float(value)
    return value


def _expected(base: str, hint: str, or_none: bool | str) -> str:
    text = base + (f" ({hint})" if hint else "")
    if or_none:
        text += " or None" + (f" ({or_none})" if isinstance(or_none, str) else "")
    return text


# ----------------------------------------------------------------------------------------------
# constraints
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (``numbers.Integral`` or ``numbers.Real``) between ``low`` and
    ``high`` (``None``: unbounded on that side), as scikit-learn's ``Interval``.

    ``closed``: which ends belong to the interval (``"left"``, ``"right"``, ``"both"``,
    ``"neither"``); an integer interval is always closed on its finite ends (``n > 0`` is
    ``n >= 1``). ``finite``: refuse ``+-inf`` (reals only; NaN is always refused).

    >>> Interval(numbers.Integral, 1, None).describe()
    'an int >= 1'
    >>> Interval(numbers.Real, 0, 1, closed="neither").describe()
    'a float in (0, 1)'
    >>> Interval(numbers.Real, 0, None, closed="neither").describe()
    'a finite float > 0'
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: Closed = "both"
    finite: bool = True

    def __post_init__(self) -> None:
        if self.kind not in (numbers.Integral, numbers.Real):
            raise TypeError(f"Interval kind must be numbers.Integral or numbers.Real, got {self.kind!r}")
        if self.closed not in _CLOSED:
            raise ValueError(f"Interval closed must be one of {list(_CLOSED)}, got {self.closed!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"Interval low must be <= high, got low={self.low!r} and high={self.high!r}")

    @property
    def _integral(self) -> bool:
        return self.kind is numbers.Integral

    def type_ok(self, value: object) -> bool:
        """Is ``value`` of the right type (an int / a real number, never a bool)?"""
        return is_int(value) if self._integral else is_real(value)

    def __contains__(self, value: object) -> bool:
        if not self.type_ok(value):
            return False
        v = _plain(value)
        if self._integral:
            return (self.low is None or v >= self.low) and (self.high is None or v <= self.high)
        if math.isnan(v) or (self.finite and math.isinf(v)):
            return False
        left = self.closed in ("left", "both")
        right = self.closed in ("right", "both")
        if self.low is not None and not (v >= self.low if left else v > self.low):
            return False
        if self.high is not None and not (v <= self.high if right else v < self.high):
            return False
        return True

    def describe(self, *, plural: bool = False) -> str:
        """What a value must be, e.g. ``"an int in [1, 3]"``, ``"a finite float >= 0"``;
        ``plural``: what the elements of a sequence must be (``"floats in (0, 1)"``)."""
        lo, hi = self.low, self.high
        if self._integral:
            noun = "ints" if plural else "an int"
            if lo is not None and hi is not None:
                return f"{noun} in [{_num(lo)}, {_num(hi)}]"
            if lo is not None:
                return f"{noun} >= {_num(lo)}"
            if hi is not None:
                return f"{noun} <= {_num(hi)}"
            return noun
        left = self.closed in ("left", "both")
        right = self.closed in ("right", "both")
        noun = "floats" if plural else "a float"
        if lo is not None and hi is not None:
            # both ends finite numbers: finiteness goes without saying
            return f"{noun} in {'[' if left else '('}{_num(lo)}, {_num(hi)}{']' if right else ')'}"
        if lo is not None:
            bound = f" {'>=' if left else '>'} {_num(lo)}"
        elif hi is not None:
            bound = f" {'<=' if right else '<'} {_num(hi)}"
        else:
            bound = ""
        if self.finite:
            return ("finite floats" if plural else "a finite float") + bound
        return f"{noun}{bound} (inf allowed)" if bound else f"{noun} (+-inf allowed)"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (scikit-learn's ``StrOptions``/``Options``), compared with
    ``==`` but never mixing bools with numbers (``True`` is not the option ``1``).

    >>> Options(("prv", "rdp")).describe()
    "one of ['prv', 'rdp']"
    """

    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))

    def match(self, value: object) -> tuple[bool, Any]:
        """``(True, the option equal to value)`` or ``(False, None)``."""
        for option in self.options:
            if is_bool(option) != is_bool(value):
                continue
            try:
                equal = bool(option == value)
            except (TypeError, ValueError):  # an array compared elementwise, say
                equal = False
            if equal:
                return True, option
        return False, None

    def __contains__(self, value: object) -> bool:
        return self.match(value)[0]

    def describe(self) -> str:
        return f"one of {list(self.options)}"


# ----------------------------------------------------------------------------------------------
# the checks callers use
# ----------------------------------------------------------------------------------------------
def _check_interval(value: Any, interval: Interval, *, name: str, hint: str, or_none: bool | str) -> Any:
    expected = _expected(interval.describe(), hint, or_none)
    if not interval.type_ok(value):
        raise ParameterTypeError(f"{name} must be {expected}, {_type_got(value)}")
    if value not in interval:
        raise ValueError(f"{name} must be {expected}, got {_plain(value)!r}")
    return int(value) if interval.kind is numbers.Integral else float(value)


def check_int(value: Any, *, name: str, low: int | None = None, high: int | None = None,
              hint: str = "", or_none: bool | str = False) -> Any:
    """Return ``value`` as a plain ``int`` in ``[low, high]`` (either bound may be ``None``).

    ``name``: the argument as the caller knows it (``"n_shadows"``, ``"TopKMask.k (top_k)"``).
    ``hint``: a few words on what the value means or why the bound, shown in parentheses after
    the constraint. ``or_none``: ``None`` is accepted (and returned); a string says what
    ``None`` means. Raises :class:`ParameterTypeError` for a non-int (a bool, a float, even
    ``2.0``) and ``ValueError`` for an int out of range.

    >>> check_int(np.int64(2), name="k", low=1)
    2
    >>> check_int(True, name="k", low=1)
    Traceback (most recent call last):
    ...
    mialab.validation.ParameterTypeError: k must be an int >= 1, got True (bool)
    """
    if value is None and or_none:
        return None
    return _check_interval(value, Interval(numbers.Integral, low, high), name=name, hint=hint, or_none=or_none)


def check_real(value: Any, *, name: str, low: float | None = None, high: float | None = None,
               closed: Closed = "both", finite: bool = True, hint: str = "",
               or_none: bool | str = False) -> Any:
    """Return ``value`` as a plain ``float`` between ``low`` and ``high``.

    ``closed`` says which bounds are included (as :class:`Interval`); ``finite=False`` accepts
    ``+-inf`` within the bounds. NaN is always refused. ints (not bools) and numpy scalars are
    accepted and converted. ``hint`` and ``or_none`` as in :func:`check_int`.

    >>> check_real(1, name="weight_decay", low=0, closed="neither")
    1.0
    >>> check_real(1.0, name="delta", low=0, high=1, closed="neither")
    Traceback (most recent call last):
    ...
    ValueError: delta must be a float in (0, 1), got 1.0
    """
    if value is None and or_none:
        return None
    return _check_interval(value, Interval(numbers.Real, low, high, closed, finite), name=name, hint=hint,
                           or_none=or_none)


def check_reals(values: Any, *, name: str, low: float | None = None, high: float | None = None,
                closed: Closed = "both", finite: bool = True) -> tuple[float, ...]:
    """Return a sequence (list, tuple, 1-D array) of reals as a tuple of floats, in order.

    Each element is checked as :func:`check_real` and named ``name[i]`` in an error. A str is
    not a sequence of numbers here.

    >>> check_reals([0.1, 0.01], name="fpr_targets", low=0, high=1, closed="neither")
    (0.1, 0.01)
    """
    expected = f"a sequence of {Interval(numbers.Real, low, high, closed, finite).describe(plural=True)}"
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ParameterTypeError(f"{name} must be {expected}, {_type_got(values)}")
    return tuple(check_real(v, name=f"{name}[{i}]", low=low, high=high, closed=closed, finite=finite)
                 for i, v in enumerate(values))


def check_bool(value: Any, *, name: str, hint: str = "") -> bool:
    """Return ``value`` as a plain ``bool``; ``1``, ``"yes"`` and ``None`` are refused.

    >>> check_bool(np.bool_(True), name="flip")
    True
    """
    if not is_bool(value):
        raise ParameterTypeError(f"{name} must be {_expected('a bool', hint, False)}, {_type_got(value)}")
    return bool(value)


def check_choice(value: Any, *, name: str, options: Iterable[Any], hint: str = "") -> Any:
    """Return the option equal to ``value``, or raise ``ValueError`` listing the options.

    >>> check_choice("rdp", name="accountant", options=("prv", "rdp"))
    'rdp'
    """
    opts = options if isinstance(options, Options) else Options(tuple(options))
    found, option = opts.match(value)
    if not found:
        raise ValueError(f"{name} must be {_expected(opts.describe(), hint, False)}, got {value!r}")
    return option


def check_str(value: Any, *, name: str, non_empty: bool = True, hint: str = "") -> str:
    """Return ``value`` if it is a ``str`` (non-empty unless ``non_empty=False``).

    Raises :class:`ParameterTypeError` for a non-str, and for ``""`` when ``non_empty`` (an
    empty name is as unusable as a missing one).
    """
    what = "a non-empty str" if non_empty else "a str"
    if not isinstance(value, str) or (non_empty and not value):
        got = f"got {value!r}" if isinstance(value, str) else _type_got(value)
        raise ParameterTypeError(f"{name} must be {_expected(what, hint, False)}, {got}")
    return value


def check_file(path: Any, *, name: str, kind: str = "file") -> Path:
    """Return ``path`` (a ``str`` or ``os.PathLike``) as a :class:`~pathlib.Path` to an existing
    regular file; ``kind`` says what file is expected (``"CSV file"``, ``"TOML file"``).

    Raises :class:`ParameterTypeError` for anything but a non-empty path, ``ValueError`` for a
    directory and ``FileNotFoundError`` for a path that does not exist::

        config file must be a TOML file, got the directory 'runs'
        from_csv: path: no such file 'missing.csv'
    """
    if not isinstance(path, (str, os.PathLike)) or (isinstance(path, str) and not path):
        raise ParameterTypeError(f"{name} must be a {kind} path (str or os.PathLike), got {path!r} "
                                 f"({type(path).__name__})")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name} must be a {kind}, got the directory {str(p)!r}")
    if not p.is_file():
        raise FileNotFoundError(f"{name}: no such file {str(p)!r}")
    return p
