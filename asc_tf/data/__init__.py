"""Data layer: TAU metadata and splits, upstream's resampler, the synthetic dataset, TFRecord conversion
and the tf.data pipeline. Names load on first use, so `asc_tf.data.resample` and `asc_tf.data.audio` do not
import TensorFlow (the edge runtime uses them)."""

from __future__ import annotations

from asc_tf._lazy import lazy_getattr

_SOURCES = {
    "asc_tf.data.audio": ("load_any_clip", "load_clip", "read_wav"),
    "asc_tf.data.convert": ("convert_dataset", "converted_dir"),
    "asc_tf.data.meta": ("CLASSES", "DEVICE_GROUPS", "DEVICES", "device_from_filename",
                         "read_file_list", "read_meta"),
    "asc_tf.data.errors": ("ShardError", "AudioFileError", "ConversionError", "StaleShardsError", "MetadataError",
                           "SplitFilesMissing"),
    "asc_tf.data.pipeline": ("load_manifest", "make_dataset", "steps_per_epoch"),
    "asc_tf.data.splits": ("SUBSETS", "ensure_split_files", "load_splits",
                           "resolve_split_dir", "split_name", "tiers_of"),
}
_WHERE = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted([*_WHERE, "resample"])

# Eager (numpy only): the submodule of the same name would otherwise shadow the function once imported.
from asc_tf.data.resample import resample  # noqa: E402


__getattr__ = lazy_getattr(__name__, _WHERE, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
