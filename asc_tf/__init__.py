"""asc-tf: a TensorFlow/Keras port of the DCASE2024 Task 1 baseline (CP-Mobile) for low-complexity
acoustic scene classification.

Importing it is light (no TensorFlow), so `asc_tf.edge` runs on a device with numpy and LiteRT only:
`Config`, `build_model` and `load_model` load their modules on first use.

Saved models: our custom Keras objects (MelFrontend, FreqMixStyle, TorchBatchNorm, StridedDepthwiseConv2D,
TorchAdamW, WarmupCosine) are registered with Keras when their modules are imported, i.e. by
`import asc_tf.model` and `import asc_tf.training.optimizer` / `.schedule`. Keras 3 does not import a saved
object's module by itself, so load `.keras` files with `asc_tf.load_model(path)`, which imports them first
(or call `asc_tf.register_keras_objects()` before `keras.saving.load_model`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from asc_tf._lazy import lazy_getattr as _lazy_getattr

__all__ = ["Config", "build_model", "load_model", "register_keras_objects"]
__version__ = "0.1.0"

_LAZY = {"Config": "asc_tf.config", "build_model": "asc_tf.model"}
# the modules whose import registers the Keras objects a saved asc-tf model refers to by name
KERAS_OBJECT_MODULES = ("asc_tf.model", "asc_tf.training.optimizer", "asc_tf.training.schedule")

__getattr__ = _lazy_getattr(__name__, _LAZY, globals())  # `asc_tf.Config`, `build_model`, submodules on first use


def register_keras_objects() -> None:
    """Import the modules whose classes Keras must find by name when loading a `.keras` file (idempotent)."""
    for module in KERAS_OBJECT_MODULES:
        importlib.import_module(module)


def load_model(path: str | Path, compile: bool = False) -> Any:
    """A `.keras` file written by asc-tf (a model, a network, a checkpoint with its optimizer when `compile`)."""
    register_keras_objects()
    import keras

    return keras.saving.load_model(Path(path), compile=compile)
