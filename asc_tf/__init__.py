"""asc-tf: a TensorFlow/Keras port of the DCASE2024 Task 1 baseline (CP-Mobile) for low-complexity
acoustic scene classification. Importing it registers the custom Keras layers (for `load_model`)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines drown our one-line errors

from asc_tf.config import Config  # noqa: E402
from asc_tf.model import build_model  # noqa: E402
from asc_tf import training as _training  # noqa: E402,F401  registers TorchAdamW and WarmupCosine for load_model

__all__ = ["Config", "build_model"]
__version__ = "0.1.0"
