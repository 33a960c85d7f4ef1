"""Data layer: TAU metadata and splits, upstream's resampler, the synthetic dataset, TFRecord conversion
and the tf.data pipeline."""

from asc_tf.data.audio import AudioFileError, load_any_clip, load_clip, read_wav
from asc_tf.data.convert import ConversionError, StaleShardsError, convert_dataset, converted_dir
from asc_tf.data.meta import (CLASSES, DEVICE_GROUPS, DEVICES, MetadataError, device_from_filename,
                              read_file_list, read_meta)
from asc_tf.data.pipeline import ShardError, load_manifest, make_dataset, steps_per_epoch
from asc_tf.data.resample import resample
from asc_tf.data.splits import (SUBSETS, SplitFilesMissing, ensure_split_files, load_splits,
                                resolve_split_dir, split_name, tiers_of)

__all__ = [
    "AudioFileError", "CLASSES", "ConversionError", "DEVICES", "DEVICE_GROUPS", "MetadataError", "SUBSETS",
    "ShardError", "SplitFilesMissing", "StaleShardsError", "convert_dataset", "converted_dir",
    "device_from_filename", "ensure_split_files", "load_any_clip", "load_clip", "load_manifest", "load_splits",
    "make_dataset", "read_file_list", "read_meta", "read_wav", "resample", "resolve_split_dir", "split_name",
    "steps_per_epoch", "tiers_of",
]
