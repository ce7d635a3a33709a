"""`edge evaluate`: honest metrics of a bundle on labelled data, with plots and subgroups."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edge.core import plots
from edge.core.bundle import Bundle
from edge.core.data import Dataset, discover, load_canvases, read_metadata
from edge.core.errors import DataError
from edge.core.metrics import compute_metrics, roc_curve, subgroup_metrics
from edge.core.preprocess import normalize
from edge.core.report import fmt, metrics_table, table, write_report

EXCLUDED_COLUMNS = {"image_id", "path", "name", "file", "split", "label", "fracture_count"}


def select(ds: Dataset, split: str | None) -> Dataset:
    """The split to evaluate: the one asked for, else 'test' when present, else everything."""
    if split:
        if split not in ds.splits:
            raise DataError(f"no '{split}' split (found {ds.splits or 'no splits'})", ds.root)
        return ds.split(split)
    return ds.split("test") if "test" in ds.splits else ds


def subgroups_from_metadata(names: list[str], meta: dict[str, dict[str, str]]) -> dict[str, np.ndarray]:
    """Masks for subgroup metrics: every 0/1 column as col=1 (body regions, views), plus
    hardware=0 (FracAtlas' shortcut: implants almost always mean fractured), and small
    categorical columns as col=value."""
    rows = [meta.get(n) for n in names]
    if not any(rows):
        return {}
    cols = [c for c in next(r for r in rows if r) if c not in EXCLUDED_COLUMNS]
    groups: dict[str, np.ndarray] = {}
    for c in cols:
        vals = [(r or {}).get(c, "") for r in rows]
        distinct = sorted({v for v in vals if v != ""})
        if set(distinct) <= {"0", "1"}:
            groups[f"{c}=1"] = np.array([v == "1" for v in vals])
            if c == "hardware":
                groups["hardware=0"] = np.array([v == "0" for v in vals])
        elif 1 < len(distinct) <= 10:
            for d in distinct:
                groups[f"{c}={d}"] = np.array([v == d for v in vals])
    return groups


def evaluate(
    bundle: Bundle,
    data: str | Path,
    split: str | None = None,
    metadata: str | Path | None = None,
    report_dir: str | Path | None = None,
    skip_bad: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, Any]:
    found = discover(data)
    ds = select(found, split)
    y_idx = ds.labels_index(bundle.labels)  # DataError if the data has labels the model does not know
    paths = [s.path for s in ds.samples]
    canvases, kept, bad = load_canvases(paths, bundle.spec, skip_bad=skip_bad, progress=progress)
    if not len(kept):
        raise DataError("no readable images to evaluate", data)
    y_idx = y_idx[kept]
    probs = bundle.predict_proba(normalize(canvases, bundle.spec))
    m = compute_metrics(y_idx, probs, bundle.labels, bundle.task, bundle.positive_label, bundle.threshold)
    report: dict[str, Any] = {
        **m,
        "model": {"id": bundle.model_id, "sha256": bundle.sha256, "arch": bundle.arch},
        "data": str(data),
        "split": split or ("test" if "test" in found.splits else "all"),
        "skipped_files": [{"path": p, "problem": why} for p, why in bad],
    }
    if metadata:
        names = [paths[i].name for i in kept]
        groups = subgroups_from_metadata(names, read_metadata(metadata))
        report["subgroups"] = subgroup_metrics(
            y_idx, probs, bundle.labels, bundle.task, bundle.positive_label, bundle.threshold, groups
        )
    if report_dir:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        report["plots"] = _plots(bundle, y_idx, probs, m, out)
        write_report(out, report, markdown(report))
    return report


def _plots(bundle: Bundle, y_idx: np.ndarray, probs: np.ndarray, m: dict[str, Any], out: Path) -> list[str]:
    files = [plots.confusion({bundle.model_id: (m["confusion"]["labels"], m["confusion"]["matrix"])}, out / "confusion.png")]
    if bundle.task == "binary":
        pi = bundle.positive_index()
        fpr, tpr, _ = roc_curve(y_idx == pi, probs[:, pi])
        files.append(
            plots.roc({bundle.model_id: (fpr, tpr, m["auroc"])}, out / "roc.png", point=(1 - m["specificity"], m["sensitivity"]))
        )
    else:
        curves = {}
        for i, lbl in enumerate(bundle.labels):
            if (y_idx == i).any() and (y_idx != i).any():
                fpr, tpr, _ = roc_curve(y_idx == i, probs[:, i])
                curves[lbl] = (fpr, tpr, m["per_class"][lbl]["auroc"])
        files.append(plots.roc(curves, out / "roc.png"))
    files.append(plots.reliability(m["calibration"]["bins"], m["ece"], out / "reliability.png"))
    return [f.name for f in files]


def markdown(r: dict[str, Any]) -> str:
    ci = r.get("auroc_ci95")
    lines = [
        f"# Evaluation of {r['model']['id']}",
        "",
        f"Data: `{r['data']}` (split: {r['split']}), {r['n']} images; model {r['model']['arch']}, "
        f"bundle sha256 `{r['model']['sha256'][:12]}`.",
        "",
    ]
    if r["task"] == "binary":
        lines.append(f"Operating threshold {r['threshold']:.3f} on P({r['positive_label']}).")
    if ci:
        lines.append(f"AUROC {fmt(r['auroc'])} (95% bootstrap interval {fmt(ci[0])}–{fmt(ci[1])}).")
    lines += ["", metrics_table({"value": r}), "", "## Per class", ""]
    lines.append(
        table(
            ["class", "precision", "recall", "f1", "support"],
            [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in r["per_class"].items()],
        )
    )
    cm = r["confusion"]
    lines += [
        "",
        "## Confusion matrix (rows: true, columns: predicted)",
        "",
        table(["", *cm["labels"]], [[lbl, *row] for lbl, row in zip(cm["labels"], cm["matrix"], strict=True)]),
    ]
    if r.get("subgroups"):
        lines += ["", "## Subgroups", ""]
        lines.append(
            table(
                ["subgroup", "n", "accuracy", "auroc", "sensitivity", "specificity", "f1"],
                [
                    [g, v["n"], v.get("accuracy"), v.get("auroc"), v.get("sensitivity"), v.get("specificity"), v.get("f1")]
                    for g, v in r["subgroups"].items()
                ],
            )
        )
    if r.get("skipped_files"):
        lines += ["", f"{len(r['skipped_files'])} unreadable files were left out (listed in report.json)."]
    for p in r.get("plots", []):
        lines += ["", f"![{p}]({p})"]
    return "\n".join(lines) + "\n"
