"""`edge evaluate`: honest metrics of a bundle on labelled data, with plots and subgroups."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.core import plots
from edge.core.bundle import Bundle
from edge.core.data import Dataset, discover, load_canvases, read_metadata
from edge.core.errors import BundleError, DataError
from edge.core.metrics import (
    bootstrap_accuracy_gap,
    bootstrap_gap,
    compute_metrics,
    paired_accuracy_gap,
    paired_gap,
    roc_curve,
    subgroup_metrics,
)
from edge.core.preprocess import normalize
from edge.core.report import fmt, fmt_ci, metrics_table, table, write_report

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


@dataclass
class Scored:
    """One data set's labels and the bundle's probabilities on it (N x K, the bundle's label order)."""

    data: str
    split: str
    y_idx: np.ndarray
    probs: np.ndarray
    names: list[str]
    bad: list[tuple[str, str]]
    paths: list[str]  # of the kept images, in the rows' order: what pairs two models' rows

    def subset(self, rows: list[int]) -> Scored:
        return Scored(
            self.data,
            self.split,
            self.y_idx[rows],
            self.probs[rows],
            [self.names[i] for i in rows],
            self.bad,
            [self.paths[i] for i in rows],
        )


def score(
    bundle: Bundle,
    data: str | Path,
    split: str | None = None,
    skip_bad: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Scored:
    found = discover(data)
    ds = select(found, split)
    y_idx = ds.labels_index(bundle.labels)  # DataError if the data has labels the model does not know
    paths = [s.path for s in ds.samples]
    canvases, kept, bad = load_canvases(paths, bundle.spec, skip_bad=skip_bad, progress=progress)
    if not len(kept):
        raise DataError("no readable images to evaluate", data)
    probs = bundle.predict_proba(normalize(canvases, bundle.spec))
    name = split or ("test" if "test" in found.splits else "all")
    return Scored(str(data), name, y_idx[kept], probs, [paths[i].name for i in kept], bad, [str(paths[i]) for i in kept])


def report_for(
    bundle: Bundle, sc: Scored, metadata: str | Path | None = None, report_dir: str | Path | None = None
) -> dict[str, Any]:
    """Metrics of one scored data set (and its report files when ``report_dir`` is given)."""
    m = compute_metrics(sc.y_idx, sc.probs, bundle.labels, bundle.task, bundle.positive_label, bundle.threshold)
    report: dict[str, Any] = {
        **m,
        "model": {"id": bundle.model_id, "sha256": bundle.sha256, "arch": bundle.arch},
        "data": sc.data,
        "split": sc.split,
        "skipped_files": [{"path": p, "problem": why} for p, why in sc.bad],
    }
    if metadata:
        groups = subgroups_from_metadata(sc.names, read_metadata(metadata))
        report["subgroups"] = subgroup_metrics(
            sc.y_idx, sc.probs, bundle.labels, bundle.task, bundle.positive_label, bundle.threshold, groups
        )
    if report_dir:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        report["plots"] = _plots(bundle, sc.y_idx, sc.probs, m, out)
        write_report(out, report, markdown(report))
    return report


def evaluate(
    bundle: Bundle,
    data: str | Path,
    split: str | None = None,
    metadata: str | Path | None = None,
    report_dir: str | Path | None = None,
    skip_bad: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, Any]:
    return report_for(bundle, score(bundle, data, split, skip_bad, progress), metadata, report_dir)


def _names(datas: Sequence[str | Path]) -> list[str]:
    """Short distinct names for the data sets (folder names, numbered when two are alike)."""
    base = [Path(d).name or str(d) for d in datas]
    return [b if base.count(b) == 1 else f"{b}-{i + 1}" for i, b in enumerate(base)]


def gap(bundle: Bundle, a: Scored, b: Scored, seed: int = 0) -> dict[str, Any]:
    """How data set ``b`` differs from the reference ``a``: B - A with bootstrap intervals (binary:
    AUROC, and sensitivity and specificity at the stored threshold; multi-class: accuracy)."""
    if bundle.task == "binary":
        pi = bundle.positive_index()
        return bootstrap_gap((a.y_idx == pi, a.probs[:, pi]), (b.y_idx == pi, b.probs[:, pi]), bundle.threshold, seed=seed)
    correct_a, correct_b = (s.probs.argmax(axis=1) == s.y_idx for s in (a, b))
    return bootstrap_accuracy_gap(correct_a, correct_b, seed=seed)


def evaluate_many(
    bundle: Bundle,
    datas: Sequence[str | Path],
    split: str | None = None,
    metadata: str | Path | None = None,
    report_dir: str | Path | None = None,
    skip_bad: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, Any]:
    """Several data sets in one run: each one's full report (in ``report_dir``/NAME/ when asked), and
    the gap of each later data set from the first, the reference."""
    names = _names(datas)
    scored = [score(bundle, d, split, skip_bad, progress) for d in datas]
    reports = {
        n: report_for(bundle, sc, metadata, Path(report_dir) / n if report_dir else None)
        for n, sc in zip(names, scored, strict=True)
    }
    out: dict[str, Any] = {
        "model": {"id": bundle.model_id, "sha256": bundle.sha256, "arch": bundle.arch},
        "task": bundle.task,
        "threshold": bundle.threshold if bundle.task == "binary" else None,
        "positive_label": bundle.positive_label,
        "reference": names[0],
        "datasets": reports,
        "gaps": {n: gap(bundle, scored[0], sc) for n, sc in zip(names[1:], scored[1:], strict=True)},
    }
    if report_dir:
        write_report(Path(report_dir), out, markdown_many(out))
    return out


def compare(
    a: Bundle,
    b: Bundle,
    data: str | Path,
    split: str | None = None,
    metadata: str | Path | None = None,
    report_dir: str | Path | None = None,
    skip_bad: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Two models on the same images: each one's full report (``report_dir``/A/ and /B/) and the paired
    difference B - A (binary: AUROC, and sensitivity and specificity each at its own model's threshold;
    multi-class: accuracy), with paired bootstrap intervals and McNemar's test. Each model reads the
    images with its own preprocessing; an image either one cannot read is left out of both."""
    if a.task != b.task or sorted(a.labels) != sorted(b.labels) or a.positive_label != b.positive_label:
        raise BundleError(
            f"answers another question than {a.model_id} ({b.task}, labels {b.labels} against {a.task}, labels "
            f"{a.labels}): only models of the same task and labels can be compared",
            b.model_id,
        )
    sa, sb = score(a, data, split, skip_bad, progress), score(b, data, split, skip_bad, progress)
    row_b = {p: i for i, p in enumerate(sb.paths)}
    both = [i for i, p in enumerate(sa.paths) if p in row_b]
    if not both:
        raise DataError("no image is readable by both models", data)
    sa, sb = sa.subset(both), sb.subset([row_b[sa.paths[i]] for i in both])
    truth = np.asarray(a.labels)[sa.y_idx]  # label names: the two bundles may order their labels differently
    if binary := a.task == "binary":
        y = truth == a.positive_label
        pa, pb = sa.probs[:, a.positive_index()], sb.probs[:, b.positive_index()]
        diff = paired_gap(y, pa, pb, (a.threshold, b.threshold), seed=seed)
    else:
        right_a, right_b = (np.asarray(m.labels)[s.probs.argmax(axis=1)] == truth for m, s in ((a, sa), (b, sb)))
        diff = paired_accuracy_gap(right_a, right_b, seed=seed)
    out_dir = Path(report_dir) if report_dir else None
    models = {
        "A": report_for(a, sa, metadata, out_dir / "A" if out_dir else None),
        "B": report_for(b, sb, metadata, out_dir / "B" if out_dir else None),
    }
    bad = dict(sa.bad) | dict(sb.bad)
    out: dict[str, Any] = {
        "task": a.task,
        "data": str(data),
        "split": sa.split,
        "n": len(both),
        "positive_label": a.positive_label,
        "models": models,
        "difference": diff,
        "skipped_files": [{"path": p, "problem": why} for p, why in sorted(bad.items())],
    }
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        if binary:
            curves = {
                f"{k}: {m['model']['id']}": (*roc_curve(y, p)[:2], m["auroc"])
                for (k, m), p in zip(models.items(), (pa, pb), strict=True)
            }
            out["plots"] = [plots.roc(curves, out_dir / "roc.png").name]
        write_report(out_dir, out, markdown_compare(out))
    return out


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
        lines.append(f"Operating threshold {r['threshold']:.3f} on P({r['positive_label']}) (positive when p >= threshold).")
        lines.append(_rates_line(r))
    if ci:
        lines.append(f"AUROC {fmt(r['auroc'])} (95% bootstrap interval {fmt_ci(ci)}).")
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


def _rates_line(r: dict[str, Any]) -> str:
    """Sensitivity and specificity at the threshold with their exact intervals and counts."""
    (tn, fp), (fn, tp) = r["confusion"]["matrix"]
    return (
        f"Sensitivity {fmt(r['sensitivity'])} ({tp}/{tp + fn}; 95% exact interval {fmt_ci(r.get('sensitivity_ci95'))}), "
        f"specificity {fmt(r['specificity'])} ({tn}/{tn + fp}; {fmt_ci(r.get('specificity_ci95'))})."
    )


def markdown_many(r: dict[str, Any]) -> str:
    """The multi-data-set report: one row per data set, then each one's gap from the reference."""
    binary = r["task"] == "binary"
    lines = [f"# Evaluation of {r['model']['id']} on {len(r['datasets'])} data sets", ""]
    if binary:
        lines += [f"Operating threshold {r['threshold']:.3f} on P({r['positive_label']}) (positive when p >= threshold).", ""]
    head = ["data set", "data", "split", "n", "AUROC", "AUROC 95% CI"]
    head += ["sensitivity", "sens. 95% CI", "specificity", "spec. 95% CI", "ECE"] if binary else ["accuracy", "ECE"]
    rows = []
    for name, d in r["datasets"].items():
        row = [name, f"`{d['data']}`", d["split"], d["n"], d["auroc"], fmt_ci(d.get("auroc_ci95"))]
        if binary:
            row += [d["sensitivity"], fmt_ci(d["sensitivity_ci95"]), d["specificity"], fmt_ci(d["specificity_ci95"]), d["ece"]]
        else:
            row += [d["accuracy"], d["ece"]]
        rows.append(row)
    lines.append(table(head, rows))
    if r["gaps"]:
        lines += ["", f"## Gap from the reference ({r['reference']}): other minus reference, 95% bootstrap interval", ""]
        keys = [k for k in ("auroc", "sensitivity", "specificity", "accuracy") if any(k in g for g in r["gaps"].values())]
        lines.append(
            table(
                ["data set", *(f"Δ {k}" for k in keys)],
                [[n, *(f"{fmt(g[k]['difference'])} ({fmt_ci(g[k]['ci'])})" for k in keys)] for n, g in r["gaps"].items()],
            )
        )
    lines += ["", "With --report DIR, each data set's full report (per class, confusion, subgroups, plots) is in DIR/NAME/."]
    return "\n".join(lines) + "\n"


def markdown_compare(r: dict[str, Any]) -> str:
    """The two-model report: each model's figures, then B - A on the same images."""
    binary = r["task"] == "binary"
    lines = [
        f"# {r['models']['A']['model']['id']} (A) against {r['models']['B']['model']['id']} (B)",
        "",
        f"Data: `{r['data']}` (split: {r['split']}), the same {r['n']} images for both.",
        "",
    ]
    head = ["model", "id", "bundle sha256", "AUROC", "AUROC 95% CI"]
    head += ["threshold", "sensitivity", "specificity", "ECE"] if binary else ["accuracy", "ECE"]
    rows = []
    for k, m in r["models"].items():
        row = [k, m["model"]["id"], f"`{m['model']['sha256'][:12]}`", m["auroc"], fmt_ci(m.get("auroc_ci95"))]
        row += [m["threshold"], m["sensitivity"], m["specificity"], m["ece"]] if binary else [m["accuracy"], m["ece"]]
        rows.append(row)
    lines.append(table(head, rows))
    d = r["difference"]
    lines += [
        "",
        f"## B - A on the same images: paired bootstrap 95% interval ({d['n_bootstrap']} resamples), McNemar's exact test",
        "",
    ]
    keys = ["auroc", "sensitivity", "specificity"] if binary else ["accuracy"]
    body = []
    for k in keys:
        g = d[k]
        calls = f"{g['only_b']} / {g['only_a']}" if "only_b" in g else "–"
        p = f"{g['p_mcnemar']:.2g}" if "p_mcnemar" in g else "–"  # small p-values stay readable
        body.append([k, fmt(g["difference"]), fmt_ci(g["ci"]), calls, p])
    lines.append(table(["", "B - A", "95% CI", "right only by B / only by A", "McNemar p"], body))
    if binary:
        lines += ["", "Sensitivity and specificity are each taken at the model's own stored threshold."]
    if r.get("skipped_files"):
        lines += ["", f"{len(r['skipped_files'])} images left out of both (unreadable by either model; listed in report.json)."]
    lines += ["", "With --report DIR, each model's full report (per class, confusion, subgroups, plots) is in DIR/A/ and DIR/B/."]
    for p in r.get("plots", []):
        lines += ["", f"![{p}]({p})"]
    return "\n".join(lines) + "\n"
