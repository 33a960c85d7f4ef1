"""Quantization-aware training (tensorflow-model-optimization on a tf_keras twin of the network).

tfmot and tf_keras are imported only inside the functions that use them (`asc_tf.qat.legacy`), with the
environment restored, so importing this package leaves Keras 3 untouched.
"""

from asc_tf._lazy import lazy_getattr as _lazy_getattr
from asc_tf.qat.errors import QATError

_LAZY = {"QAT_DIR": "asc_tf.qat.artefact", "QATArtefact": "asc_tf.qat.artefact", "qat_artefact": "asc_tf.qat.artefact"}
__getattr__ = _lazy_getattr(__name__, _LAZY, globals())  # artefact reads runs (Keras): `--help` stays light

__all__ = ["QAT_DIR", "QATArtefact", "QATError", "qat_artefact"]
