"""Upstream's `--precision` (Lightning's names) on Keras: `32`/`32-true` float32; `16-mixed` and `bf16-mixed`
train the network under Keras' mixed policies (float32 variables, float16/bfloat16 arithmetic; float16 with
dynamic loss scaling, as Lightning's GradScaler). The front end and Freq-MixStyle stay float32, and every
model written for evaluation, export or prediction is float32 again: the formats never change.
"""

from __future__ import annotations

from typing import Optional

import keras

from asc_tf.config import Config

POLICIES = {"32": None, "32-true": None, "16-mixed": "mixed_float16", "bf16-mixed": "mixed_bfloat16"}


def network_policy(precision: str) -> Optional[str]:
    """The Keras dtype policy of the network for `--precision` (None: float32)."""
    return POLICIES[precision]


def precision_label(precision: str) -> str:
    """How a log line names the training precision."""
    policy = network_policy(precision)
    return "float32" if policy is None else f"{policy} network"


def wrap_optimizer(optimizer: keras.optimizers.Optimizer, precision: str) -> keras.optimizers.Optimizer:
    """Dynamic loss scaling for float16 training (bfloat16 has float32's range and needs none)."""
    if network_policy(precision) == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def is_float32(model: keras.Model) -> bool:
    """Whether every layer computes in float32 (what evaluation, export and prediction expect)."""
    return all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers())  # noqa: SLF001


def float32_copy(model: keras.Model, config: Config) -> keras.Model:
    """`model` itself when it is float32, else the same architecture in float32 holding its (float32) weights."""
    if is_float32(model):
        return model
    from asc_tf.model import build_model

    copy = build_model(config)
    copy.set_weights(model.get_weights())
    return copy
