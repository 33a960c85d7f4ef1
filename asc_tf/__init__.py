"""asc-tf: a TensorFlow/Keras port of the DCASE2024 Task 1 baseline (CP-Mobile) for low-complexity
acoustic scene classification. Importing it registers the custom Keras layers (for `load_model`)."""

from asc_tf.config import Config
from asc_tf.model import build_model
from asc_tf import training as _training  # noqa: F401  registers TorchAdamW and WarmupCosine for load_model

__all__ = ["Config", "build_model"]
__version__ = "0.1.0"
