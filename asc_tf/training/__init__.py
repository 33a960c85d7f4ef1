"""Training pieces with upstream's arithmetic: the per-step LR schedule and torch's AdamW.

Names load on first use, so `asc_tf.training.demo` and the like stay light (no TensorFlow) until needed."""

from asc_tf._lazy import lazy_getattr as _lazy_getattr

__all__ = ["TorchAdamW", "WarmupCosine", "total_steps"]

_LAZY = {"TorchAdamW": "asc_tf.training.optimizer", "WarmupCosine": "asc_tf.training.schedule",
         "total_steps": "asc_tf.training.schedule"}

__getattr__ = _lazy_getattr(__name__, _LAZY, globals())
