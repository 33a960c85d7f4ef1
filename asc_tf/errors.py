"""The errors that mean "the user must fix something" (bad input, missing data, unknown run): the
command lines print them as one line instead of a traceback."""

from __future__ import annotations

from asc_tf.config import ConfigError
from asc_tf.data.audio import AudioFileError
from asc_tf.data.convert import ConversionError
from asc_tf.data.meta import MetadataError
from asc_tf.data.pipeline import ShardError
from asc_tf.data.splits import SplitFilesMissing
from asc_tf.export.errors import AuditError, ExportError
from asc_tf.predict import PredictionError
from asc_tf.qat.errors import QATError
from asc_tf.training.report import ReportError
from asc_tf.training.runs import RunError
from asc_tf.training.trainer import StrategyError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, AudioFileError, ConversionError, MetadataError, ShardError, SplitFilesMissing, RunError, StrategyError,
    PredictionError, ReportError, AuditError, ExportError, QATError,
)
