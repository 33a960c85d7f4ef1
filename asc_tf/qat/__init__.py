"""Quantization-aware training (tensorflow-model-optimization on a tf_keras twin of the network).

tfmot and tf_keras are imported only inside the functions that use them (`asc_tf.qat.legacy`), with the
environment restored, so importing this package leaves Keras 3 untouched.
"""

from asc_tf.qat.artefact import QAT_DIR, QATArtefact, qat_artefact
from asc_tf.qat.errors import QATError

__all__ = ["QAT_DIR", "QATArtefact", "QATError", "qat_artefact"]
