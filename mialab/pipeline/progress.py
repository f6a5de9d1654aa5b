"""Progress bars on stderr for long pipeline stages (training, querying)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress_bar(*, total: int, desc: str, iterable: Iterable[Any] | None = None, fractional: bool = False):
    """A progress bar on stderr; ``fractional``: it advances by shares of a unit (models that
    train epoch by epoch), shown to one decimal."""
    from tqdm.auto import tqdm

    fmt = "{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}]" if fractional else None
    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr, bar_format=fmt)


def progress(iterable: Iterable[Any], *, total: int, desc: str, quiet: bool):
    return iterable if quiet else progress_bar(total=total, desc=desc, iterable=iterable)

