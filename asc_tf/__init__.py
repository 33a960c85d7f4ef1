"""asc-tf: a TensorFlow/Keras port of the DCASE2024 Task 1 baseline (CP-Mobile) for low-complexity
acoustic scene classification."""

from asc_tf.config import Config

__all__ = ["Config"]
__version__ = "0.1.0"
