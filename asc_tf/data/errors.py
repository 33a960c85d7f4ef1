"""Errors of datasets the user must fix (light: `asc_tf.errors` imports it for every script, before TensorFlow,
pandas or scipy load); the modules that raise them import them from here."""

from __future__ import annotations


class AudioFileError(ValueError):
    """An unreadable or malformed audio file; the message names the file and what is wrong."""


class MetadataError(ValueError):
    """A malformed metadata or split file; the message names the file and line."""


class SplitFilesMissing(FileNotFoundError):
    """A split file is absent and could not be downloaded."""


class ConversionError(RuntimeError):
    """The conversion cannot go on; the message says what to fix."""


class StaleShardsError(ConversionError):
    """The output folder holds shards converted from another source or with other settings."""


class MissingAudioError(ConversionError):
    """Clips listed in meta.csv are not on disk."""


class ShardError(RuntimeError):
    """Converted shards are missing, incomplete or corrupt; the message names them."""
