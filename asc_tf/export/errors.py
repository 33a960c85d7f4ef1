"""Errors of the export the user must fix (kept light: `asc_tf.errors` imports them for every script)."""

from __future__ import annotations


class AuditError(ValueError):
    """A TFLite file the audit cannot count honestly (unreadable, dynamic shapes, control flow)."""


class ExportError(ValueError):
    """An export the user must fix: unknown checkpoint, existing bundle, missing data, unreadable bundle."""


class OverLimitError(ExportError):
    """The exported network exceeds a challenge limit (the export keeps it only when asked to)."""
