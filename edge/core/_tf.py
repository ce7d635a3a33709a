"""The one place that loads TensorFlow.

tensorflow-model-optimization only supports Keras 2, so every stage must use tf-keras.
TF_USE_LEGACY_KERAS must be set before tensorflow is first imported; importing
TensorFlow through this module guarantees that.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ info chatter out of CLI output



def _import_quietly():
    """Import TensorFlow with C++ start-up chatter (CUDA stubs probing for a GPU) kept off stderr.

    Python exceptions still surface; only the native log lines written during import go."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        import tf_keras as keras

        tf.config.list_physical_devices("GPU")  # probes CUDA now, while stderr is quiet
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf, keras


tf, keras = _import_quietly()

if os.environ["TF_USE_LEGACY_KERAS"] != "1":  # someone set it to 0 before us
    raise RuntimeError("fracture-edge needs TF_USE_LEGACY_KERAS=1 (tf-keras); unset or fix the variable")

__all__ = ["tf", "keras"]
