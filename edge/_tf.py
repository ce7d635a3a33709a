"""The one place that loads TensorFlow.

tensorflow-model-optimization only supports Keras 2, so every stage must use tf-keras.
TF_USE_LEGACY_KERAS must be set before tensorflow is first imported; importing
TensorFlow through this module guarantees that.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ info chatter out of CLI output

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

if os.environ["TF_USE_LEGACY_KERAS"] != "1":  # someone set it to 0 before us
    raise RuntimeError("fracture-edge needs TF_USE_LEGACY_KERAS=1 (tf-keras); unset or fix the variable")

__all__ = ["tf", "keras"]
