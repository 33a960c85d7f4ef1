"""XLA for the training step (`--jit_compile`) through TensorFlow's auto-clustering: XLA compiles the clusters of ops
that have an XLA kernel and leaves the others to TensorFlow. Keras' own `jit_compile=True` compiles the whole step
or fails, and Freq-MixStyle's Beta draw (StatelessRandomGammaV3) has no XLA kernel, so that mode is never used.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

CPU_FLAG = "--tf_xla_cpu_global_jit"  # auto-clustering on the CPU; TensorFlow reads it from the environment only


def use_xla(enabled: bool) -> None:
    """Auto-clustering on or off for every function traced from now on (process-wide, as TensorFlow's setting is).
    Only a change is applied: any change makes TensorFlow trace every function again at its next call."""
    if enabled == bool(tf.config.optimizer.get_jit()):
        return
    if enabled:
        flags = os.environ.get("TF_XLA_FLAGS", "")
        if CPU_FLAG not in flags.split():
            os.environ["TF_XLA_FLAGS"] = f"{flags} {CPU_FLAG}".strip()
        tf.config.optimizer.set_jit("autoclustering")
    else:
        tf.config.optimizer.set_jit(False)


def no_strict_xla(model: keras.Model) -> keras.Model:
    """Keras' `jit_compile="auto"` turns strict XLA on where a GPU is visible, which fails on the Beta draw."""
    model.jit_compile = False
    return model
