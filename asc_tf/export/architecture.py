"""Audit an architecture before any training: build its network with trained-like random BatchNorm terms,
convert it to int8 exactly as the export does (calibrated on random log-mels: the calibration changes scales,
not the parameter bytes or MACs) and audit the file. Used by `python -m asc_tf.complexity --int8` and by the
width search (`asc_tf.budget`)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from asc_tf.config import Config
from asc_tf.console import quiet_native
from asc_tf.export.audit import Audit, audit_tflite

CALIBRATION_CLIPS = 4


def random_log_mels(config: Config, count: int = CALIBRATION_CLIPS, seed: int = 0) -> list[np.ndarray]:
    """`count` random log-mel-shaped inputs `[1, n_mels, frames, 1]` (natural-log range of real log-mels)."""
    frames = 1 + config.sample_rate // config.hop_length
    rng = np.random.default_rng(seed)
    return [rng.normal(-4.0, 3.0, (1, config.n_mels, frames, config.in_channels)).astype(np.float32)
            for _ in range(count)]


def _trained_like(network: Any, seed: int = 0) -> Any:
    """Random BatchNorm statistics and affine terms, as a trained network has. A fresh network's folded biases
    are all zero, and the converter stores equal constant buffers once: the audit would undercount them."""
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        if hasattr(layer, "moving_variance"):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return network


def int8_network_bytes(config: Config) -> bytes:
    """The int8 TFLite network of `config`'s architecture (random trained-like weights), converted as the
    export does."""
    from asc_tf.export import tflite
    from asc_tf.model.cp_mobile import build_network

    with quiet_native():  # the converter's SavedModel export prints its signature
        return tflite.convert_network_int8(_trained_like(build_network(config)), random_log_mels(config))


def audit_architecture(config: Config, name: Optional[str] = None) -> Audit:
    """The flatbuffer audit of `config`'s network exported to int8 (limits 128,000 bytes, 30 M MACs)."""
    label = name or f"{config.preset or 'network'}_int8.tflite"
    return audit_tflite(int8_network_bytes(config), label)
