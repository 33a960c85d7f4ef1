"""Errors of training, runs and their reports the user must fix (light: `asc_tf.errors` imports it for every script, before
TensorFlow loads)."""

from __future__ import annotations


class RunError(ValueError):
    """An unknown run id, or a run directory that cannot be used; the message says what to do."""


class StrategyError(ValueError):
    """A distribution strategy that cannot be used here."""


class ReportError(ValueError):
    """A run or its `info.json` cannot be read; the message names the file."""
