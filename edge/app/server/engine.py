"""The model side of the server: loaded once, run on a bounded pool of worker threads.

Requests never share mutable state: each job decodes its own bytes and gets its own tensors
back from the Explainer's tf.functions (traced once at start-up, thread-safe afterwards). At
most ``workers`` jobs run and ``queue_size`` wait; one more is refused with 503 at once rather
than piling up latency.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from edge.core.bundle import Bundle
from edge.core.errors import EdgeError, ImageReadError
from edge.core.imageio import decode_bytes, sniff
from edge.core.inference import decide
from edge.core.preprocess import preprocess
from edge.explain import METHODS, Explainer
from edge.explain.overlay import caption, overlay_png

from .errors import ApiError, from_image_error
from .settings import ServerSettings

ACCEPTED = {"png", "jpeg", "webp", "dicom"}


class Slot:
    """One place among workers + queue_size; released exactly once."""

    def __init__(self, sem: threading.BoundedSemaphore):
        self._sem, self._lock, self.released, self.handed_off = sem, threading.Lock(), False, False

    def release(self) -> None:
        with self._lock:
            if not self.released:
                self.released = True
                self._sem.release()


class TypeModel:
    """The optional fracture-type bundle (multi-class), run beside the fracture model when a request
    asks for it. Its answer always carries the accuracy measured in cross-validation."""

    def __init__(self, bundle: Bundle):
        import tensorflow as tf

        if bundle.task != "multiclass":
            raise EdgeError("the fracture-type model must be a multi-class bundle", bundle.path)
        self.bundle = bundle
        model = bundle.load_model()
        sig = tf.TensorSpec([None, *bundle.spec.input_shape], tf.float32)
        self._predict = tf.function(lambda x: model(x, training=False), input_signature=[sig])
        self._predict(tf.zeros((1, *bundle.spec.input_shape)))  # trace now, not on a user's request
        cv = bundle.card.metrics.get("cv") or {}
        self.cv = {k: (cv.get(k) or {}).get("mean") for k in ("top1", "top3", "macro_f1")}
        self.statement = str(bundle.card.extra.get("accuracy_statement") or "accuracy not measured; a guess, not a finding")
        self.weak = bool(bundle.card.extra.get("weak", True))

    def answer(self, pixels: np.ndarray) -> tuple[dict[str, Any], float]:
        t = time.perf_counter()
        x = preprocess(pixels, self.bundle.spec)[None]
        probs = np.asarray(self._predict(x).numpy(), dtype=np.float64)[0]
        labels = self.bundle.labels
        order = np.argsort(-probs)
        return {
            "model": {"id": self.bundle.model_id, "sha256": self.bundle.sha256},
            "label": labels[int(order[0])],
            "probabilities": {k: float(v) for k, v in zip(labels, probs, strict=True)},
            "top3": [labels[int(i)] for i in order[:3]],
            "cv_top1": self.cv["top1"],
            "cv_top3": self.cv["top3"],
            "cv_macro_f1": self.cv["macro_f1"],
            "weak": self.weak,
            "accuracy": self.statement,
        }, (time.perf_counter() - t) * 1e3


class Engine:
    def __init__(self, bundle: Bundle, settings: ServerSettings, explainer: Explainer | None = None, types: Bundle | None = None):
        self.bundle = bundle
        self.settings = settings
        self.explainer = explainer or Explainer(bundle, layer=settings.layer, warmup=True)
        self.types = TypeModel(types) if types is not None else None
        self._warm_up()
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="edge-infer")
        self._slots = threading.BoundedSemaphore(settings.workers + settings.queue_size)

    def _warm_up(self) -> None:
        """Trace every method and load the overlay's colour table now, not on a user's request."""
        grey = np.full((64, 48), 128, np.uint8)
        for m in METHODS:
            e = self.explainer.explain(grey, m)
        overlay_png(grey, e.heatmap(), "warm-up")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def reserve(self) -> Slot:
        """A place in the queue, taken before the upload is read: a full queue answers 503 at once."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(503, "overloaded", "too many requests in the queue; retry shortly", {"Retry-After": "1"})
        return Slot(self._slots)

    async def run(self, slot: Slot, fn, *args) -> Any:
        """Run a job on the pool in a reserved slot; the slot is freed when the job ends (also when
        the client went away)."""
        queued = time.perf_counter()
        try:
            fut = self.pool.submit(fn, queued, *args)
        except RuntimeError:  # pool shut down
            slot.release()
            raise ApiError(503, "unavailable", "server is shutting down") from None
        slot.handed_off = True
        fut.add_done_callback(lambda _: slot.release())
        return await asyncio.wrap_future(fut)

    async def submit(self, fn, *args) -> Any:
        return await self.run(self.reserve(), fn, *args)

    # --- jobs (run on the worker threads) --------------------------------------------------
    def _decode(self, data: bytes) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        if not data:
            raise ApiError(422, "empty_upload", "the uploaded file is empty")
        kind = sniff(data)  # the content decides, never the file name or the declared type
        if kind not in ACCEPTED:
            raise ApiError(415, "unsupported_media_type", "not a PNG, JPEG, WebP or DICOM image")
        try:
            pixels = decode_bytes(data, name="upload", limits=self.settings.limits).pixels
        except ImageReadError as e:
            raise from_image_error(e) from None
        return pixels, (time.perf_counter() - t) * 1e3

    def _base(self, probs: np.ndarray) -> dict[str, Any]:
        b = self.bundle
        label, pp, decision = decide(b, probs)
        return {
            "model": {"id": b.model_id, "sha256": b.sha256},
            "task": b.task,
            "label": label,
            "probabilities": {k: float(v) for k, v in zip(b.labels, probs, strict=True)},
            "positive_probability": pp,
            "threshold": b.threshold if b.task == "binary" else None,
            "decision": decision,
        }

    def predict_job(self, queued: float, data: bytes, types: bool = False) -> dict[str, Any]:
        start = time.perf_counter()
        if types and self.types is None:
            raise ApiError(422, "types_unavailable", "this server runs without a fracture-type model")
        pixels, t_decode = self._decode(data)
        probs, t = self.explainer.predict(pixels)
        out = self._base(probs)
        if types and self.types is not None:  # only when asked: the default response stays as it was
            out["fracture_type"], t["types"] = self.types.answer(pixels)
        out["timings_ms"] = {"queue": (start - queued) * 1e3, "decode": t_decode, **t}
        return out

    def explain_job(self, queued: float, data: bytes, method: str, target: str | None, overlay: bool = True) -> dict[str, Any]:
        start = time.perf_counter()
        pixels, t_decode = self._decode(data)
        try:
            e = self.explainer.explain(pixels, method, target)
        except EdgeError as err:  # unknown method or target label
            raise ApiError(422, "invalid_request", err.line()) from None
        t0 = time.perf_counter()
        out = self._base(e.probabilities)
        grid = e.grid()
        text = caption(out["label"], out["probabilities"][out["label"]], e.method_title, e.target_label)
        # the overlay stretches the same grid the phone gets (C resize), instead of a second
        # full-resolution float64 mapping: identical picture on both sides, ~10 ms less per request
        # the phone draws its own overlay from the grid (android_demo core Heatmap.overlay) and asks
        # overlay=false: the PNG (most of this step's time) is made only for callers that show it as is
        png = overlay_png(pixels, grid, text, max_side=self.settings.overlay_max_side) if overlay else None
        out["heatmap"] = {
            "method": e.method,
            "target_label": e.target_label,
            "grid": np.round(grid, 4).tolist(),
            "grid_shape": list(grid.shape),
            "png_base64": base64.b64encode(png).decode("ascii") if png is not None else None,
        }
        out["timings_ms"] = {
            "queue": (start - queued) * 1e3,
            "decode": t_decode,
            **e.timings_ms,
            "heatmap": (time.perf_counter() - t0) * 1e3,
        }
        return out
