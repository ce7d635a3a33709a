"""fracture-edge: bone-fracture classifiers from Keras training to phones at the bedside.

The shared core lives here (preprocessing spec, model bundle, data, metrics, runtime);
``train`` and ``convert`` build on it, the ``edge`` command sits on top of all three.
TensorFlow is imported lazily (through ``edge.core._tf``) so that light commands start fast.
"""

__version__ = "0.1.0"


def validate(*args, **kwargs):
    """The accuracy-drift gate as a Python API: see :func:`edge.app.validation.validate`.

    Imported on first use so that ``import edge`` stays light (no TensorFlow)."""
    from edge.app.validation import validate as _validate

    return _validate(*args, **kwargs)
