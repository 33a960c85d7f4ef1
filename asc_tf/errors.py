"""The errors that mean "the user must fix something" (bad input, missing data, unknown run): the command lines
print them as one line instead of a traceback. Every error type lives in a module that imports nothing heavy (no
TensorFlow, pandas or scipy), so a command refuses bad input before they load (tests/test_cli.py checks it)."""

from __future__ import annotations

from asc_tf.config import ConfigError
from asc_tf.data.errors import AudioFileError, ConversionError, MetadataError, ShardError, SplitFilesMissing
from asc_tf.export.errors import AuditError, ExportError
from asc_tf.qat.errors import QATError
from asc_tf.storage import ResourceError
from asc_tf.training.errors import ReportError, RunError, StrategyError


class PredictionError(ValueError):
    """A prediction cannot be made or written (asc_tf.predict); the message names the file and what to do."""


USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, AudioFileError, ConversionError, MetadataError, ShardError, SplitFilesMissing, RunError, StrategyError,
    PredictionError, ReportError, AuditError, ExportError, QATError, ResourceError,
)
