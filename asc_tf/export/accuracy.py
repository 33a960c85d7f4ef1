"""Accuracy of what ships: the exported front end + network under LiteRT on the dev-test split, with the same
69 metrics as training, side by side with the float Keras model, and their top-1 agreement."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from asc_tf.config import Config
from asc_tf.data.pipeline import make_dataset
from asc_tf.export.runtime import ExportedClassifier
from asc_tf.training.metrics import MetricsAccumulator

log = logging.getLogger(__name__)


@dataclass
class AccuracyReport:
    """Both models' metrics on the same clips, in the same batches (the `loss` metric depends on them)."""

    keras_float32: dict[str, float]
    exported: dict[str, float]
    top1_agreement: float
    clips: int
    exported_logits: np.ndarray
    keras_logits: np.ndarray

    def to_dict(self, label: str) -> dict:
        """For the manifest: macro accuracy of each, agreement, and all 69 metrics (NaN as null)."""
        clean = lambda m: {k: (None if np.isnan(v) else v) for k, v in m.items()}  # noqa: E731
        return {"split": "test", "clips": self.clips, "top1_agreement": self.top1_agreement,
                "macro_avg_acc": {"keras_float32": self.keras_float32["macro_avg_acc"],
                                  label: self.exported["macro_avg_acc"]},
                "metrics": {"keras_float32": clean(self.keras_float32), label: clean(self.exported)}}


def dev_test_batches(shards_dir: Path, config: Config) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(waveforms, labels, filenames) of the dev-test split in upstream's evaluation batches."""
    for waveform, label, meta in make_dataset(shards_dir, "test", config, training=False, with_metadata=True):
        yield waveform.numpy(), label.numpy(), meta["filename"].numpy()


def evaluate_exported(model: keras.Model, classifier: ExportedClassifier, shards_dir: Path,
                      config: Config) -> AccuracyReport:
    """The Keras model (float32, inference mode) and the exported pipeline on every dev-test clip."""
    forward = tf.function(lambda w: model(w, training=False), reduce_retracing=True)
    ours, theirs = MetricsAccumulator(), MetricsAccumulator()
    all_ours, all_theirs = [], []
    for waveform, label, files in dev_test_batches(shards_dir, config):
        keras_logits = np.asarray(forward(tf.constant(waveform)))
        exported_logits = classifier.logits_batch(waveform)
        theirs.update(keras_logits, label, files=files)
        ours.update(exported_logits, label, files=files)
        all_ours.append(exported_logits), all_theirs.append(keras_logits)
    exported, reference = np.concatenate(all_ours), np.concatenate(all_theirs)
    agreement = float(np.mean(exported.argmax(1) == reference.argmax(1)))
    log.info("dev-test: Keras float32 macro acc %.4f, exported %.4f, top-1 agreement %.4f (%d clips)",
             theirs.compute()["macro_avg_acc"], ours.compute()["macro_avg_acc"], agreement, len(exported))
    return AccuracyReport(theirs.compute(), ours.compute(), agreement, len(exported), exported, reference)
