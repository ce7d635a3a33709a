"""One report writer for every command: report.json for machines, report.md for people, PNG plots.

Commands build a plain dict (the JSON) and Markdown text; this module writes them atomically
and offers the small Markdown helpers they share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .fsutil import write_json, write_text


def write_report(out_dir: str | Path, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_json(out / "report.json", clean(data)), write_text(out / "report.md", markdown)


def clean(o: Any) -> Any:
    """JSON-safe: NaN/inf become null (JSON has no NaN), numpy scalars become Python numbers."""
    import numpy as np

    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def fmt_ci(v: Sequence[float | None] | None, digits: int = 3) -> str:
    """An interval as "lo–hi"; "–" when it is missing or undefined (NaN, or None read back from JSON)."""
    if not v or any(x is None or math.isnan(x) for x in v):
        return "–"
    return "–".join(fmt(x, digits) for x in v)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
    """A Markdown table (also readable as plain text in a terminal)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c, digits) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def metrics_table(
    named: dict[str, dict[str, Any]],
    keys: Sequence[str] = ("n", "accuracy", "precision", "recall", "f1", "auroc", "sensitivity", "specificity", "ece"),
) -> str:
    """Rows = metrics, columns = the named metric dicts (e.g. val, test, full, edge)."""
    return table(["metric", *named], [[k, *(m.get(k) for m in named.values())] for k in keys])
