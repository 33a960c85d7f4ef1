"""What to export: a run's last checkpoint or a `.keras` file with its run configuration, and the
representative log-mels (from the run's training split) that calibrate the int8 network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np

import asc_tf
from asc_tf.config import Config
from asc_tf.data.pipeline import make_dataset
from asc_tf.export import tflite
from asc_tf.export.errors import ExportError
from asc_tf.export.locate import locate_source
from asc_tf.training.precision import float32_copy


@dataclass
class Source:
    """The model to export and where it came from."""

    model: keras.Model
    config: Config
    checkpoint: Path
    run_id: Optional[str]
    qat_network: Optional[Path] = None  # the run's QAT int8 network: exported as is (its scales are QAT's)

    @property
    def name(self) -> str:
        return self.run_id or self.checkpoint.stem


def load_source(ckpt: str, config: Config, overrides: Optional[dict[str, Any]] = None,
                qat: Optional[bool] = None) -> Source:
    """The model of a run id (its last checkpoint) or of a `.keras` path, with the run's configuration
    (`overrides`, e.g. data flags given on the command line, win over it; the project folder is `config`'s).
    `qat`: None takes a run's QAT artefact (`<run>/qat/`) when it has one, True requires it, False ignores it."""
    located = locate_source(ckpt, config, qat)
    path = located.checkpoint
    merged = located.config.replace(project_dir=config.project_dir, **dict(overrides or {}))
    try:
        model = asc_tf.load_model(path)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for a damaged zip)
        raise ExportError(f"{path}: cannot load the model ({type(error).__name__}: {error})") from None
    model = float32_copy(model, merged)  # a mixed-precision checkpoint exports as the float32 model it trains
    try:
        tflite.frontend_of(model)
    except ValueError as error:
        raise ExportError(f"{path}: {error}") from None
    return Source(model, merged, path, located.run_id, located.qat_network)


def representative_waveforms(shards_dir: Path, config: Config, size: int) -> list[np.ndarray]:
    """`size` clips `[1, samples]` of the run's training split, shuffled by the seed, unrolled."""
    split = f"split{config.subset}"
    plain = config.replace(roll_sec=0.0, seed=0 if config.seed is None else config.seed)
    out: list[np.ndarray] = []
    for waveform, _ in make_dataset(shards_dir, split, plain, training=True, epoch=0, batch_size=32):
        out += [w[None] for w in np.asarray(waveform)]
        if len(out) >= size:
            break
    if not out:
        raise ExportError(f"the training split {split} is empty: no representative set for int8 calibration")
    return out[:size]


def representative_log_mels(model: keras.Model, shards_dir: Path, config: Config, size: int) -> list[np.ndarray]:
    """`size` log-mels `[1, n_mels, frames, 1]` of the run's training split, shuffled by the seed, unrolled."""
    frontend = tflite.frontend_of(model)
    clips = np.concatenate(representative_waveforms(shards_dir, config, size))
    out: list[np.ndarray] = []
    for start in range(0, len(clips), 32):  # the dataset's batches
        out += [m[None] for m in np.asarray(frontend(clips[start:start + 32], training=False))]
    return out
