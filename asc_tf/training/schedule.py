"""Upstream's learning-rate schedule: linear warm-up then half-cosine to 0, stepped per batch.

transformers.get_cosine_schedule_with_warmup (num_cycles 0.5): lr(k) = peak * k / warmup for k < warmup,
else peak * max(0, 0.5 * (1 + cos(pi * (k - warmup) / (total - warmup)))); k = optimizer steps taken.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf


def total_steps(epochs: int, clips: int, batch_size: int) -> int:
    """Optimizer steps of a run, as Lightning's estimated_stepping_batches (no drop_last)."""
    return epochs * math.ceil(clips / batch_size)


@keras.saving.register_keras_serializable(package="asc_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up + cosine schedule; computed in float64 (exact to 1e-9 of upstream's Python floats)."""

    def __init__(self, peak_lr: float, warmup_steps: int, total_steps: int, dtype: str = "float64") -> None:
        if total_steps <= 0 or warmup_steps < 0:
            raise ValueError(f"need total_steps > 0 and warmup_steps >= 0, got {total_steps}, {warmup_steps}")
        self.peak_lr, self.warmup_steps, self.total_steps, self.dtype = peak_lr, warmup_steps, total_steps, dtype

    def __call__(self, step: Any) -> tf.Tensor:
        k = tf.cast(step, tf.float64)
        warmup = tf.constant(float(self.warmup_steps), tf.float64)
        warm = k / max(1.0, float(self.warmup_steps))
        progress = (k - warmup) / max(1.0, float(self.total_steps - self.warmup_steps))
        cosine = tf.maximum(tf.constant(0.0, tf.float64), 0.5 * (1.0 + tf.cos(math.pi * progress)))
        lr = self.peak_lr * tf.where(k < warmup, warm, cosine)
        return tf.cast(lr, self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {"peak_lr": self.peak_lr, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "dtype": self.dtype}
