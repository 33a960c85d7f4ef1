"""The TFLite interpreter behind `TFLiteModel`: LiteRT (`ai_edge_litert`), else `tflite_runtime`, chosen once at
import. Both expose the same `Interpreter`/`OpResolverType` API; tflite_runtime is the one with 32-bit Arm
wheels (ai-edge-litert has none), so a Pi on 32-bit Raspberry Pi OS runs the same code.
"""

from __future__ import annotations

import importlib
from typing import Any

BACKENDS = ("ai_edge_litert", "tflite_runtime")  # in order of preference


def _load() -> tuple[str, str, Any]:
    """(package name, version, its `interpreter` module) of the first backend that imports."""
    problems = []
    for name in BACKENDS:
        try:
            module = importlib.import_module(f"{name}.interpreter")
        except ImportError as error:
            problems.append(f"{name}: {error}")
            continue
        version = getattr(importlib.import_module(name), "__version__", "unknown version")
        return name, str(version), module
    raise ImportError("no TFLite interpreter: install ai-edge-litert (requirements-edge.txt) or, on 32-bit Arm, "
                      "tflite-runtime (requirements-edge-armv7.txt); " + "; ".join(problems))


BACKEND, VERSION, _module = _load()
Interpreter = _module.Interpreter
OpResolverType = _module.OpResolverType


def describe() -> str:
    """The backend in one phrase, e.g. `ai_edge_litert 2.3.0` (for `--version` and benchmark lines)."""
    return f"{BACKEND} {VERSION}"
