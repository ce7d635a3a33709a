"""The one place that loads TensorFlow, and the switch that keeps its native log lines quiet.

tensorflow-model-optimization only supports Keras 2, so every stage must use tf-keras.
TF_USE_LEGACY_KERAS must be set before tensorflow is first imported; importing TensorFlow
through this module (``from edge.core._tf import tf, keras``) guarantees that. TensorFlow loads
on that first access, not when this module is imported, so ``quiet_native`` costs nothing in
processes that never need TensorFlow (LiteRT inference, the CLI's light commands).

Quiet by default: the CLI prints the toolkit's own lines; TensorFlow's C++ and converter chatter
(``fully_quantize: 0, inference_type: 6 ...``, XNNPACK delegate notices), its Python logger's
warnings and tf.lite's deprecation warning show only with ``edge -v``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING lines of TensorFlow proper
# oneDNN's AVX-512 1x1-convolution weight-gradient kernel (jit_avx512_common_1x1_convolution_bwd_weights_t,
# in the oneDNN that TensorFlow 2.21 bundles) corrupts the heap on AVX-512 CPUs: training the tiny test
# model at 64 px aborted with "free(): invalid pointer" or a segfault 4 runs in 4 (gdb: frame 8 is that
# kernel's dnnl::impl::parallel), and never with oneDNN held to AVX2 (3 of 3). This was the suite's rare
# "free(): invalid next size": machines of this kind are AVX2-only on some days, AVX-512 on others.
# Must be set before TensorFlow loads; a user may still choose another ISA (manual: .docs/manual/default-model.md).
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

# QuantizationDebugger builds tf.lite.Interpreter internally (LiteRT has no debugger); the
# toolkit's own inference uses ai_edge_litert, so the warning tells users nothing they can act on.
_DEPRECATION = r"\s*Warning: tf\.lite\.Interpreter is deprecated"

tf: Any  # set on first access (module __getattr__ below)
keras: Any
_lock = threading.Lock()


def verbose() -> bool:
    """True when the user asked for details (`edge -v` sets the root logger to INFO or lower)."""
    return logging.getLogger().isEnabledFor(logging.INFO)


def _writes_to_fd2(stream: Any) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # in-memory streams (click's CliRunner, pytest capsys)
        return False


@contextmanager
def quiet_native(show: bool | None = None) -> Iterator[None]:
    """Within the block, native code writing to file descriptor 2 (TensorFlow's converter and
    MLIR passes, TFLite/LiteRT's INFO lines) goes to a scratch file, while Python's own output
    (logging handlers, warnings, click) still reaches the terminal through a copy of the
    descriptor. If the block raises, the captured native lines are printed after all: they are
    the diagnosis. ``show`` (default: ``verbose()``) turns the silencing off.

    File descriptor 2 is process-wide: use it around conversions and interpreter creation, not
    around work other threads are logging from at the same time."""
    if verbose() if show is None else show:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    sink = tempfile.TemporaryFile()  # noqa: SIM115  (closed in the finally below)
    py_err: IO[str] = open(os.dup(saved), "w", buffering=1, errors="backslashreplace")  # noqa: SIM115
    old_stderr = sys.stderr
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler) and _writes_to_fd2(h.stream)]
    os.dup2(sink.fileno(), 2)
    if _writes_to_fd2(old_stderr):
        sys.stderr = py_err
    for h in handlers:
        h.setStream(py_err)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_DEPRECATION, category=UserWarning)
            yield
    except BaseException:
        sink.seek(0)
        py_err.write(sink.read()[-20000:].decode("utf-8", "replace"))
        raise
    finally:
        py_err.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = old_stderr
        for h in handlers:
            h.setStream(old_stderr)
        py_err.close()
        sink.close()


# Native libraries that carry their own copy of something TensorFlow also exports. TensorFlow's libraries load
# with RTLD_GLOBAL, and a library loaded after them resolves each import to TensorFlow's copy where TensorFlow
# exports the name and to its own dependency where it does not. LD_DEBUG=bindings showed the split: OpenCV's
# bundled libssl 1.1.1k took CRYPTO_malloc/CRYPTO_free and EVP_CIPHER_CTX_new/free from TensorFlow's BoringSSL
# (which keeps a size prefix before each block) and its locks and digests from its own libcrypto, i.e. two
# allocators on one object: a "free(): invalid pointer / invalid next size" abort waiting for the first call.
# The system sqlite (imported by IPython, which Keras 3 imports for tf-keras-vis) and gdcm's zlib split the
# same way. Loaded before TensorFlow, each binds whole to its own dependencies (their extension modules load
# RTLD_LOCAL, so TensorFlow still binds to itself). tests/test_native_bindings.py holds this.
PRELOAD_BEFORE_TF = ("sqlite3", "PIL.Image", "h5py", "cv2", "gdcm")


def _preload_native() -> None:
    import contextlib
    import importlib

    for name in PRELOAD_BEFORE_TF:
        with contextlib.suppress(ImportError):  # optional ones (gdcm: only for some DICOM transfer syntaxes)
            importlib.import_module(name)


def _load() -> tuple[Any, Any]:
    """Import TensorFlow with its start-up chatter (CUDA stubs probing for a GPU) kept quiet."""
    if "tensorflow" not in sys.modules:
        _preload_native()
    with quiet_native(show=False):
        import tensorflow as tf_
        import tf_keras as keras_

        tf_.config.list_physical_devices("GPU")  # probes CUDA now, while stderr is quiet
    if os.environ["TF_USE_LEGACY_KERAS"] != "1":  # someone set it to 0 before us
        raise RuntimeError("fracture-edge needs TF_USE_LEGACY_KERAS=1 (tf-keras); unset or fix the variable")
    if not verbose():  # e.g. "Compiled the loaded model, but the compiled metrics have yet to be built"
        tf_.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)  # SavedModel export notes during conversion
        warnings.filterwarnings("ignore", message=_DEPRECATION, category=UserWarning)
    return tf_, keras_


def __getattr__(name: str) -> Any:
    if name not in ("tf", "keras"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if "tf" not in globals():
            globals()["tf"], globals()["keras"] = _load()
    return globals()[name]


__all__ = ["tf", "keras", "quiet_native", "verbose"]
