"""asc-tf: a TensorFlow/Keras port of the DCASE2024 Task 1 baseline (CP-Mobile) for low-complexity
acoustic scene classification.

Importing it is light (no TensorFlow), so `asc_tf.edge` runs on a device with numpy and LiteRT only:
`Config` and `build_model` load on first use, and the custom Keras objects (for `keras.saving.load_model`)
are registered as soon as Keras is imported, before or after `import asc_tf` (a post-import hook:
Keras 3 imports a saved object's module only for its own packages, so it cannot find ours by itself).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Optional, Sequence

from asc_tf._lazy import lazy_getattr as _lazy_getattr

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines drown our one-line errors

__all__ = ["Config", "build_model"]
__version__ = "0.1.0"

_LAZY = {"Config": "asc_tf.config", "build_model": "asc_tf.model"}
_KERAS_MODULES = ("asc_tf.model", "asc_tf.training")  # register MelFrontend, ..., TorchAdamW, WarmupCosine


__getattr__ = _lazy_getattr(__name__, _LAZY, globals())  # `asc_tf.Config`, `build_model`, submodules on first use


def register_keras_objects() -> None:
    """Import the modules whose classes Keras must find by name when loading a `.keras` file."""
    for module in _KERAS_MODULES:
        importlib.import_module(module)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `keras` with the other finders and, once Keras has loaded, registers our Keras objects."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
                  ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # one-shot; and the real finders must not see us again
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        register_keras_objects()


if "keras" in sys.modules:
    register_keras_objects()
elif not any(isinstance(finder, _RegisterAfterKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
