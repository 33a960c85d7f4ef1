"""Edge runtime: an export bundle run with numpy, scipy and LiteRT (or tflite_runtime) only (no TensorFlow, no Keras).

    from asc_tf.edge import Classifier
    probabilities = Classifier("exports/<run>_int8", num_threads=1).predict(waveform)  # [32000] float32 at 32 kHz

`python -m asc_tf.edge BUNDLE FILE.wav...` classifies files, `python -m asc_tf.edge BUNDLE -` a raw 16-bit mono
PCM stream from standard input, one decision per second. Device packages: `requirements-edge.txt` (32-bit Arm:
`requirements-edge-armv7.txt`); `--version` names the interpreter in use.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Classifier": "asc_tf.edge.classifier", "Latency": "asc_tf.edge.classifier",
          "softmax": "asc_tf.edge.classifier", "LogMel": "asc_tf.edge.frontend", "MelBands": "asc_tf.edge.mel",
          "EdgeError": "asc_tf.edge.errors"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Public names load on first use: the Keras front end imports `asc_tf.edge.mel` without loading LiteRT."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
