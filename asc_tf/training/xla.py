"""XLA for the training step (`--jit_compile`) through TensorFlow's auto-clustering: XLA compiles the clusters of ops
that have an XLA kernel and leaves the others to TensorFlow. Keras' own `jit_compile=True` compiles the whole step
or fails, and Freq-MixStyle's Beta draw (StatelessRandomGammaV3) has no XLA kernel, so that mode is never used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

CPU_FLAG = "--tf_xla_cpu_global_jit"  # auto-clustering on the CPU; TensorFlow reads it from the environment only


def request_cpu_xla() -> None:
    """Put the CPU auto-clustering flag in the environment. TensorFlow reads it once, early (a `get_jit` call is
    already too late), so train.py calls this before importing TensorFlow; no TensorFlow import here."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if CPU_FLAG not in flags.split():
        os.environ["TF_XLA_FLAGS"] = f"{flags} {CPU_FLAG}".strip()


def use_xla(enabled: bool) -> None:
    """Auto-clustering on or off for every function traced from now on (process-wide, as TensorFlow's setting is).
    Only a change is applied: any change makes TensorFlow trace every function again at its next call."""
    if enabled:
        request_cpu_xla()
    import tensorflow as tf

    if enabled == bool(tf.config.optimizer.get_jit()):
        return
    tf.config.optimizer.set_jit("autoclustering" if enabled else False)


def no_strict_xla(model: "keras.Model") -> "keras.Model":
    """Keras' `jit_compile="auto"` turns strict XLA on where a GPU is visible, which fails on the Beta draw."""
    model.jit_compile = False
    return model
