"""Errors of quantization-aware training the user must fix (light: `asc_tf.errors` imports it for every script)."""

from __future__ import annotations


class QATError(ValueError):
    """A QAT step that cannot run or an artefact that cannot be used (no float model, existing artefact, ...)."""
