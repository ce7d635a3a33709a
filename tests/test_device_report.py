"""Parsing and matching a phone's device report (edge/app/device_report.py), on report files as the Kotlin core writes them.

The full round trip (Kotlin writes the report for real parity images, `edge validate` accepts it)
runs in .ci/android.sh; these tests hold the Python half to its messages without a model.
"""

import json

import numpy as np
import pytest

from edge.app import device_report as dr

LABELS = ["fractured", "not_fractured"]


def _report(images, failures=(), **extra):
    rep = {
        "format": dr.FORMAT,
        "version": 1,
        "model": {"file": "fracture_int8.tflite", "sha256": "a" * 64},
        "accelerator": "cpu",
        "threads": 4,
        "fallback": "GPU failed to load (UnsatisfiedLinkError)",
        "images": [
            {"path": p, "label": p.split("/")[0], "probabilities": {"fractured": q, "not_fractured": 1 - q}, "latency_ms": 5.0}
            for p, q in images
        ],
        "failures": [{"path": p, "label": p.split("/")[0], "error": e} for p, e in failures],
    }
    rep.update(extra)
    return rep


def _write(tmp_path, rep, name="device.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rep) if not isinstance(rep, str) else rep)
    return path


def test_failures_are_left_out_of_the_comparison(tmp_path):
    rep = _report(
        [("fractured/a.jpg", 0.8), ("not_fractured/b.jpg", 0.1)],
        [("not_fractured/c.tif", "TIFF is decoded by the server only: send it to edge serve")],
    )
    dev = dr.read_device_report(_write(tmp_path, rep), LABELS)
    mask = dr.match(dev, ["fractured/a.jpg", "not_fractured/b.jpg", "not_fractured/c.tif"], [], "device.json")
    assert mask.tolist() == [True, True, False]
    p, lat = dr.probabilities(dev, ["fractured/a.jpg", "not_fractured/b.jpg"], LABELS)
    assert np.allclose(p, [[0.8, 0.2], [0.1, 0.9]]) and lat.tolist() == [5.0, 5.0]
    assert dr.failures(dev) == [
        {"path": "not_fractured/c.tif", "problem": "on the phone: TIFF is decoded by the server only: send it to edge serve"}
    ]


@pytest.mark.parametrize(
    "readable, unreadable, words",
    [
        (
            ["fractured/a.jpg", "fractured/z.jpg"],
            [],
            "1 image(s) of the data are not in the device report (e.g. fractured/z.jpg)",
        ),
        (["fractured/a.jpg"], ["not_fractured/b.jpg"], "the phone classified cannot be read here (e.g. not_fractured/b.jpg)"),
        (["fractured/a.jpg"], [], "of the device report are not in the data (e.g. not_fractured/b.jpg)"),
    ],
)
def test_a_mismatching_report_names_the_first_image(tmp_path, readable, unreadable, words):
    dev = dr.read_device_report(_write(tmp_path, _report([("fractured/a.jpg", 0.8), ("not_fractured/b.jpg", 0.1)])), LABELS)
    with pytest.raises(dr.DeviceReportError) as e:
        dr.match(dev, readable, unreadable, tmp_path / "device.json")
    assert words in e.value.line() and "device.json" in e.value.line() and e.value.exit_code == 2


@pytest.mark.parametrize(
    "rep, words",
    [
        ("{ not json", "not valid JSON"),
        ({"format": "something-else"}, "not a fracture-edge device report"),
        (_report([("fractured/a.jpg", 0.5)], version=2), "version 2"),
        (
            _report([], [("fractured/a.jpg", "corrupt")]),
            "no classified images (all 1 failed on the phone, e.g. fractured/a.jpg: corrupt)",
        ),
        (_report([("fractured/a.jpg", 1.5)]), "outside [0, 1]"),
        (_report([("fractured/a.jpg", 0.5)], [("fractured/a.jpg", "x")]), "listed twice"),
        ({**_report([("fractured/a.jpg", 0.5)]), "failures": [{"path": "x"}]}, "failure entry 0 lacks"),
    ],
)
def test_malformed_reports_give_one_line(tmp_path, rep, words):
    with pytest.raises(dr.DeviceReportError) as e:
        dr.read_device_report(_write(tmp_path, rep), LABELS)
    assert words in e.value.line() and "\n" not in e.value.line()


def test_other_labels_are_refused(tmp_path):
    rep = _report([("fractured/a.jpg", 0.5)])
    rep["images"][0]["probabilities"] = {"a": 0.5, "b": 0.5}
    with pytest.raises(dr.DeviceReportError, match="the bundle's labels are"):
        dr.read_device_report(_write(tmp_path, rep), LABELS)
