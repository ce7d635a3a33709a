"""A phone's device report: parsing it and matching it to the data `edge validate` reads.

The Android app's validation mode (android_demo/core DeviceReport.kt) writes this JSON
(format "fracture-edge/device-report", version 1)::

    format, version, created
    model: {file, sha256, bundle_sha256, precision}   the model that produced every entry
    device: {manufacturer, model, android_sdk, abi}
    accelerator: "cpu" | "gpu", threads, fallback (null, or why the GPU path was left)
    images: [{path, label, probabilities: {label: p}, latency_ms}]
    failures: [{path, label, error}]          images the phone could not decode or run

Paths are relative to the validated folder, '/'-separated. Every image of the data must be in
``images`` or ``failures``: a phone failure (a TIFF or compressed DICOM the phone sends to the
server, say) leaves that image out of the comparison and is listed with the skipped images.
The phone decodes large photos downsampled (at least twice the model input on each axis), Python
at full size: that difference is what the agreement and AUROC-drop gates absorb.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import EdgeError

FORMAT = "fracture-edge/device-report"
VERSION = 1


class DeviceReportError(EdgeError):
    """A device report that is malformed or does not match the data (exit 2, like every bad input)."""


HINT = "run the phone's validation mode on the same folder"


def read_device_report(path: str | Path, labels: list[str]) -> dict[str, Any]:
    """The parsed report; a DeviceReportError naming the file for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise DeviceReportError("device report not found", path)
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DeviceReportError(f"device report is not valid JSON ({e})", path) from None
    if not isinstance(rep, dict) or rep.get("format") != FORMAT:
        raise DeviceReportError(
            f"not a fracture-edge device report (format={rep.get('format') if isinstance(rep, dict) else None!r})", path
        )
    if not isinstance(rep.get("version"), int) or rep["version"] > VERSION:
        raise DeviceReportError(
            f"device report version {rep.get('version')!r} is not one this toolkit understands (<= {VERSION})", path
        )
    images, failures = rep.get("images"), rep.get("failures", [])
    if not isinstance(images, list) or not isinstance(failures, list):
        raise DeviceReportError("device report 'images' and 'failures' must be lists", path)
    if not images:
        why = f" (all {len(failures)} failed on the phone, e.g. {_failure_text(failures[0])})" if failures else ""
        raise DeviceReportError(f"device report lists no classified images{why}", path)
    for i, im in enumerate(images):
        _check_image(i, im, labels, path)
    for i, f in enumerate(failures):
        if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not isinstance(f.get("error"), str):
            raise DeviceReportError(f"failure entry {i} lacks 'path' or 'error'", path)
    dup = _first_duplicate([im["path"] for im in images] + [f["path"] for f in failures])
    if dup is not None:
        raise DeviceReportError(f"image {dup} is listed twice in the device report", path)
    return rep


def _check_image(i: int, im: Any, labels: list[str], path: Path) -> None:
    probs = im.get("probabilities") if isinstance(im, dict) else None
    if not isinstance(probs, dict) or not isinstance(im.get("path"), str):
        raise DeviceReportError(f"image entry {i} lacks 'path' or 'probabilities'", path)
    if set(probs) != set(labels):
        raise DeviceReportError(
            f"image entry {i} ({im['path']}) has probabilities for {sorted(probs)}, the bundle's labels are {labels}", path
        )
    bad = [k for k, v in probs.items() if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0]
    if bad:
        raise DeviceReportError(f"image entry {i} ({im['path']}) has a probability outside [0, 1] for {bad[0]!r}", path)


def _first_duplicate(items: list[str]) -> str | None:
    seen: set[str] = set()
    for x in items:
        if x in seen:
            return x
        seen.add(x)
    return None


def _failure_text(f: Any) -> str:
    return f"{f.get('path')}: {f.get('error')}" if isinstance(f, dict) else repr(f)


def match(device: dict[str, Any], readable: list[str], unreadable: list[str], path: str | Path | None) -> np.ndarray:
    """Which of the ``readable`` data images (relative paths) the phone classified, as a bool mask.

    Raises a DeviceReportError naming the first mismatch when the report and the data disagree on
    which images exist: a data image in neither list, a phone result for an image the data lacks
    or Python cannot read, or a phone failure for a file that is not in the data.
    """
    done = {im["path"] for im in device["images"]}
    failed = {f["path"] for f in device.get("failures", [])}
    here = set(readable)
    problems = []
    missing = [r for r in readable if r not in done and r not in failed]
    if missing:
        problems.append(f"{len(missing)} image(s) of the data are not in the device report (e.g. {missing[0]})")
    unread = sorted(done & set(unreadable))
    if unread:
        problems.append(f"{len(unread)} image(s) the phone classified cannot be read here (e.g. {unread[0]})")
    foreign = sorted((done | failed) - here - set(unreadable))
    if foreign:
        problems.append(f"{len(foreign)} image(s) of the device report are not in the data (e.g. {foreign[0]})")
    if problems:
        raise DeviceReportError("; ".join(problems), path, HINT)
    mask = np.array([r in done for r in readable], dtype=bool)
    if not mask.any():
        raise DeviceReportError("the phone classified none of the readable images of the data", path, HINT)
    return mask


def probabilities(device: dict[str, Any], rel: list[str], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N x labels probabilities in ``rel`` order, the latencies the phone measured in ms)."""
    by_path = {im["path"]: im for im in device["images"]}
    p = np.array([[float(by_path[r]["probabilities"][lbl]) for lbl in labels] for r in rel])
    lat = np.array([float(by_path[r]["latency_ms"]) for r in rel if by_path[r].get("latency_ms") is not None])
    return p, lat


def failures(device: dict[str, Any]) -> list[dict[str, str]]:
    """The phone's failures as ``data.skipped`` entries of the validation report."""
    return [{"path": f["path"], "problem": f"on the phone: {f['error']}"} for f in device.get("failures", [])]
