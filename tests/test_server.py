"""The server over real HTTP: uvicorn on a free loopback port, real radiographs, every bad input."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dicom_helpers import dicom_bytes
from edge.app.bench.live_server import LiveServer
from edge.app.bench.live_server import free_port as _free_port
from edge.app.cli import main
from edge.app.server import ServerSettings, create_app
from edge.core.errors import EdgeError, ImageReadError
from edge.core.imageio import read_image
from edge.core.preprocess import preprocess
from edge.explain.mapping import grid_shape

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def srv_explainer(tiny_bundle):
    from edge.explain import Explainer

    return Explainer(tiny_bundle)


@pytest.fixture(scope="module")
def srv_auth(tiny_bundle, srv_explainer):
    s = LiveServer(create_app(tiny_bundle, ServerSettings(token=TOKEN, max_pixels=20_000_000), srv_explainer))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def srv_open(tiny_bundle, srv_explainer):
    s = LiveServer(create_app(tiny_bundle, ServerSettings(no_auth=True, workers=1, queue_size=0, max_upload_mb=1), srv_explainer))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def srv_images(small_data):
    return (
        sorted((small_data / "test" / "fractured").glob("*.jpg"))[:2]
        + sorted((small_data / "test" / "not_fractured").glob("*.jpg"))[:2]
    )


@pytest.fixture(scope="module")
def srv_truncated(fracatlas):
    for p in sorted(fracatlas.glob("*/not_fractured/IMG00041*.jpg")):
        try:
            read_image(p)
        except ImageReadError:
            return p.read_bytes()
    pytest.fail("no truncated JPEG among the FracAtlas IMG00041xx files")


def _auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def _post(srv, route, data: bytes, name="x.jpg", ctype="image/jpeg", headers=None, **form):
    return httpx.post(
        f"{srv.url}{route}",
        files={"file": (name, data, ctype)},
        data=form or None,
        headers=_auth() if headers is None else headers,
        timeout=60,
    )


def _dicom(pixels: np.ndarray | None, patient="SECRET^PATIENT") -> bytes:
    """A grey 8-bit DICOM with identifying fields; ``None``: a header without any pixel module."""
    ids = {"PatientName": patient, "PatientID": "ID-4711", "Modality": "DX"}
    if pixels is not None:
        return dicom_bytes(pixels.astype(np.uint8), **ids)
    no_pixels = ("PixelData", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation")
    no_pixels += ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation")
    return dicom_bytes(np.zeros((1, 1), np.uint8), **ids, **dict.fromkeys(no_pixels))


def _grey(path) -> np.ndarray:
    px = read_image(path).pixels
    return px if px.ndim == 2 else px[..., 0]


# --- round trips -------------------------------------------------------------------------------------
def test_health_ready_model_docs(srv_auth, tiny_bundle):
    assert httpx.get(f"{srv_auth.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{srv_auth.url}/readyz").json()
    assert ready["status"] == "ready" and ready["model"]["sha256"] == tiny_bundle.sha256
    card = httpx.get(f"{srv_auth.url}/v1/model", headers=_auth()).json()
    assert card["bundle_sha256"] == tiny_bundle.sha256 and card["labels"] == tiny_bundle.labels
    assert httpx.get(f"{srv_auth.url}/docs").status_code == 200
    paths = httpx.get(f"{srv_auth.url}/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/explain"]["post"]["requestBody"]["content"]


def test_predict_round_trip_real_radiographs(srv_auth, tiny_bundle, srv_images):
    for p in srv_images:
        r = _post(srv_auth, "/v1/predict", p.read_bytes())
        assert r.status_code == 200, r.text
        d = r.json()
        want = tiny_bundle.predict_proba(preprocess(read_image(p).pixels, tiny_bundle.spec)[None])[0]
        assert d["model"] == {"id": tiny_bundle.model_id, "sha256": tiny_bundle.sha256}
        assert d["task"] == "binary" and d["threshold"] == pytest.approx(tiny_bundle.threshold)
        assert d["probabilities"]["fractured"] == pytest.approx(want[0], abs=1e-5)
        assert d["positive_probability"] == d["probabilities"]["fractured"]
        assert d["decision"] == (d["positive_probability"] >= d["threshold"])
        assert d["label"] == ("fractured" if d["decision"] else "not_fractured")
        assert {"decode", "inference", "total"} <= set(d["timings_ms"])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_explain_round_trip(srv_auth, tiny_bundle, srv_explainer, srv_images, method):
    p = srv_images[0]
    r = _post(srv_auth, "/v1/explain", p.read_bytes(), method=method)
    assert r.status_code == 200, r.text
    d = r.json()
    hm = d["heatmap"]
    pixels = read_image(p).pixels
    e = srv_explainer.explain(pixels, method)
    assert hm["method"] == method and hm["target_label"] == "fractured"
    assert hm["grid_shape"] == list(grid_shape(e.cam.shape, pixels.shape[:2], tiny_bundle.spec))
    grid = np.array(hm["grid"])
    assert grid.shape == tuple(hm["grid_shape"]) and grid.min() >= 0 and grid.max() <= 1
    np.testing.assert_allclose(grid, e.grid(), atol=1e-4)
    png = Image.open(io.BytesIO(base64.b64decode(hm["png_base64"])))
    h, w = pixels.shape[:2]
    assert png.format == "PNG" and abs(png.size[0] / png.size[1] - w / h) < 0.02
    assert d["probabilities"]["fractured"] == pytest.approx(float(e.probabilities[0]), abs=1e-6)


def test_explain_options_query_and_dicom(srv_auth, srv_images):
    data = srv_images[1].read_bytes()
    r = httpx.post(
        f"{srv_auth.url}/v1/explain?method=gradcam++&target=not_fractured",
        files={"file": ("a", data)},
        headers=_auth(),
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["heatmap"]["method"] == "gradcam++"
    assert r.json()["heatmap"]["target_label"] == "not_fractured"
    assert _post(srv_auth, "/v1/explain", data, method="lime").json()["error"]["code"] == "invalid_request"
    r = _post(srv_auth, "/v1/explain", data, target="broken")
    assert r.status_code == 422 and "unknown target" in r.json()["error"]["message"]
    # overlay=false (the phone's call): the same grid, no PNG; anything but a boolean is refused
    full, grid_only = _post(srv_auth, "/v1/explain", data).json(), _post(srv_auth, "/v1/explain", data, overlay="false").json()
    assert grid_only["heatmap"]["png_base64"] is None and full["heatmap"]["png_base64"]
    assert grid_only["heatmap"]["grid"] == full["heatmap"]["grid"]
    r = _post(srv_auth, "/v1/explain", data, overlay="perhaps")
    assert r.status_code == 422 and "overlay must be true or false" in r.json()["error"]["message"]
    # DICOM: the content decides, not the name or declared type
    r = _post(srv_auth, "/v1/predict", _dicom(_grey(srv_images[1])), name="scan.jpg", ctype="image/png")
    assert r.status_code == 200, r.text


def test_parallel_clients_get_sequential_results(srv_auth, srv_images):
    jobs = [(route, p) for p in srv_images for route in ("/v1/predict", "/v1/explain")]

    def call(job):
        d = _post(srv_auth, job[0], job[1].read_bytes()).json()
        d.pop("timings_ms")
        return d

    sequential = [call(j) for j in jobs]
    order = [jobs[i % len(jobs)] for i in range(3, 3 + 8 * 3)]  # 24 calls, interleaved differently
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(call, order))
    for job, got in zip(order, parallel, strict=True):
        want = sequential[jobs.index(job)]
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
        if "heatmap" in want:
            np.testing.assert_allclose(got["heatmap"]["grid"], want["heatmap"]["grid"], atol=1e-4)


# --- bad input: the right 4xx, JSON, and the server stays up ------------------------------------------
def test_bad_inputs(srv_auth, srv_truncated, srv_images):
    def err(r, status, code):
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == code

    err(_post(srv_auth, "/v1/predict", b""), 422, "empty_upload")
    err(_post(srv_auth, "/v1/predict", b"hello, not an image" * 10, name="x.jpg"), 415, "unsupported_media_type")
    err(_post(srv_auth, "/v1/explain", srv_truncated), 422, "bad_image")
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")  # a few KB that would decode to 400 Mpx
    assert len(bomb.getvalue()) < 200_000
    err(_post(srv_auth, "/v1/explain", bomb.getvalue(), name="b.png", ctype="image/png"), 413, "image_too_large")
    err(_post(srv_auth, "/v1/predict", _dicom(None), name="x.dcm", ctype="application/dicom"), 422, "bad_image")
    err(
        httpx.post(f"{srv_auth.url}/v1/predict", content=b"raw", headers={**_auth(), "Content-Type": "image/jpeg"}),
        415,
        "unsupported_media_type",
    )
    err(
        httpx.post(f"{srv_auth.url}/v1/predict", data={"other": "1"}, files={"x": ("a", b"1")}, headers=_auth()),
        422,
        "missing_file",
    )
    err(
        httpx.post(
            f"{srv_auth.url}/v1/predict",
            content=b"--zz\r\ngarbage",
            headers={**_auth(), "Content-Type": "multipart/form-data; boundary=zz"},
        ),
        422,
        "missing_file",
    )
    err(httpx.get(f"{srv_auth.url}/v1/predict", headers=_auth()), 405, "method_not_allowed")
    err(httpx.get(f"{srv_auth.url}/v2/nothing", headers=_auth()), 404, "not_found")
    assert httpx.get(f"{srv_auth.url}/healthz").status_code == 200
    assert _post(srv_auth, "/v1/predict", srv_images[0].read_bytes()).status_code == 200


def test_auth_required_on_every_v1_route(srv_auth, srv_images):
    data = srv_images[0].read_bytes()
    for headers in ({}, _auth("wrong-token-0123456789"), {"Authorization": f"Basic {TOKEN}"}):
        for r in (
            _post(srv_auth, "/v1/predict", data, headers=headers),
            _post(srv_auth, "/v1/explain", data, headers=headers),
            httpx.get(f"{srv_auth.url}/v1/model", headers=headers),
        ):
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"


def test_auth_off_upload_limit_and_queue(srv_open, srv_images):
    data = srv_images[0].read_bytes()
    assert _post(srv_open, "/v1/predict", data, headers={}).status_code == 200
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(1_200_000)  # over the 1 MB limit of this server
    r = _post(srv_open, "/v1/predict", big, headers={})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    engine = srv_open.app.state.engine
    assert engine._slots.acquire(blocking=False)  # the one slot (1 worker, queue 0) is now busy
    try:
        r = _post(srv_open, "/v1/explain", data, headers={})
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
    finally:
        engine._slots.release()
    assert _post(srv_open, "/v1/explain", data, headers={}).status_code == 200


def test_bench_serve_load_counts_successes_and_refusals(srv_open, srv_images):
    """The load generator of `edge bench serve`: one client gets 200s; with 4 clients on a server
    with 1 worker and no queue, some requests are refused (503) and counted as failed."""
    from edge.app.bench.serve import load

    data = srv_images[0].read_bytes()
    rps, failed = load(srv_open.port, data, clients=1, seconds=1.0)
    assert rps > 0 and failed == 0
    rps, failed = load(srv_open.port, data, clients=4, seconds=2.0)
    assert rps > 0 and failed > 0


def test_live_server_runs_the_hardened_protocol_of_edge_serve(srv_auth):
    """Tests and benchmarks exercise what production runs: oversized headers are refused before
    authentication (431) by the bounded protocol, and the same connection cap is configured."""
    import socket

    cfg = srv_auth.server.config
    want = ServerSettings(token=TOKEN).uvicorn_kwargs()
    assert cfg.http is not None and cfg.http.__name__ == want["http"].__name__ == "BoundedHttpToolsProtocol"
    assert cfg.limit_concurrency == want["limit_concurrency"] and cfg.timeout_keep_alive == want["timeout_keep_alive"]
    floods = {
        "one long header": b"X-Flood: " + b"a" * 100_000 + b"\r\n",
        "many headers": b"".join(b"X-%d: 1\r\n" % i for i in range(150)),
        "long URL": b"",
    }
    for kind, extra in floods.items():  # each whole block in one write: it completes within one read
        path = b"/healthz?" + b"q" * 60_000 if kind == "long URL" else b"/healthz"
        with socket.create_connection(("127.0.0.1", srv_auth.port), timeout=30) as s:
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
            reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 431"), (kind, reply[:80])
    assert httpx.get(f"{srv_auth.url}/healthz", timeout=30).status_code == 200  # the server is still up


def test_no_auth_refused_off_loopback():
    with pytest.raises(EdgeError, match="refused on 0.0.0.0"):
        ServerSettings(host="0.0.0.0", no_auth=True).check()
    with pytest.raises(EdgeError, match="no API token"):
        ServerSettings(host="127.0.0.1").check()
    ServerSettings(host="::1", no_auth=True).check()
    r = CliRunner().invoke(main, ["serve", "--no-auth", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "refused" in r.output and "Traceback" not in r.output


def test_edge_serve_cli_subprocess_keeps_patient_data_out_of_logs(tiny_bundle, srv_images):
    port = _free_port()
    env = {**os.environ, "EDGE_API_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from edge.app.cli import main; main()",
            "serve",
            str(tiny_bundle.path),
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "info",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 400  # TensorFlow import, model load and warm-up on a busy machine
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline and proc.poll() is None, "edge serve did not become ready"
            time.sleep(0.5)
        srv = type("S", (), {"url": url})
        assert _post(srv, "/v1/explain", _dicom(_grey(srv_images[0])), name="SECRET.dcm").status_code == 200
        assert _post(srv, "/v1/predict", _dicom(None), name="SECRET.dcm").status_code == 422
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode("utf-8", "replace")
    assert "POST /v1/explain 200" in out  # the request was logged ...
    assert "SECRET" not in out and "ID-4711" not in out  # ... without names, file names or tags
