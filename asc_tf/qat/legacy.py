"""Import tf_keras and tensorflow-model-optimization without their side effects leaking into the program.

Importing tfmot sets `TF_USE_LEGACY_KERAS=1`, and when `tf.keras` has not been resolved yet it resolves it
right then, to Keras 2, for the rest of the process. `legacy_keras()` resolves TensorFlow's lazy `tf.keras`
loaders to Keras 3 first, imports the two packages, and restores the environment as it was, so `tf.keras`,
`import keras` and any subprocess keep Keras 3.
"""

from __future__ import annotations

import os
import types
from typing import Any

LEGACY_ENV = "TF_USE_LEGACY_KERAS"


def _resolve_lazy_keras() -> None:
    """Make TensorFlow's lazy `tf.keras` loaders pick their Keras (3: the variable is unset) now."""
    import tensorflow as tf

    for loader in (tf.keras, getattr(tf.compat.v2, "keras", None)):
        if loader is not None:
            getattr(loader, "__name__", None)  # any attribute access initialises the loader


def legacy_keras() -> tuple[types.ModuleType, Any]:
    """(tf_keras, tfmot): Keras 2 and tensorflow-model-optimization, `TF_USE_LEGACY_KERAS` left as it was."""
    previous = os.environ.get(LEGACY_ENV)
    if previous in ("1", "true", "True"):
        raise RuntimeError(f"{LEGACY_ENV}={previous} is set: asc-tf runs on Keras 3; unset it")
    _resolve_lazy_keras()
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    finally:
        if previous is None:
            os.environ.pop(LEGACY_ENV, None)
        else:
            os.environ[LEGACY_ENV] = previous
    return tf_keras, tfmot
