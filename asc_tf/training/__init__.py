"""Training pieces with upstream's arithmetic: the per-step LR schedule and torch's AdamW."""

from asc_tf.training.optimizer import TorchAdamW
from asc_tf.training.schedule import WarmupCosine, total_steps

__all__ = ["TorchAdamW", "WarmupCosine", "total_steps"]
