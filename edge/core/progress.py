"""Progress bars that stay quiet when output is not a terminal (CI logs)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def bar(it: Iterable[T], desc: str, total: int | None = None, enabled: bool | None = None) -> Iterable[T]:
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(it, desc=desc, total=total, disable=not show, leave=False, unit="img")
