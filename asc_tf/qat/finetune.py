"""Quantization-aware fine-tuning of a trained run: the network's tf_keras twin, wrapped by tfmot, trains on
log-mel batches that the run's own Keras 3 front end and Freq-MixStyle compute from the same tf.data pipeline.

QAT epochs continue the run's epoch numbering (data order, rolls and augmentation draws from (seed, epoch)),
on one device, with AdamW (the run's weight decay) and a cosine decay from `lr * QAT_LR_FACTOR` to 0.
The tuned float weights go back into the Keras 3 model; the QAT model itself is converted to int8.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

import asc_tf
from asc_tf.config import Config
from asc_tf import console
from asc_tf.data.convert import convert_dataset
from asc_tf.data.pipeline import make_dataset, split_shards
from asc_tf.export.audit import audit_tflite
from asc_tf.io import atomic_write_bytes, atomic_write_json
from asc_tf.qat.artefact import QATArtefact, qat_artefact
from asc_tf.qat.convert import convert_qat_int8
from asc_tf.qat.errors import QATError
from asc_tf.qat.legacy import legacy_keras
from asc_tf.qat.twin import build_twin, copy_weights
from asc_tf.training.metrics import MetricsAccumulator
from asc_tf.training.runs import Run, save_atomic
from asc_tf.training.progress import epoch_label
from asc_tf.training.seeding import reseed_layers

log = logging.getLogger(__name__)

QAT_LR_FACTOR = 0.1  # fine-tuning starts at a tenth of the run's peak learning rate


@dataclass
class QATResult:
    artefact: QATArtefact
    info: dict[str, Any]


def _float_model(run: Run) -> tuple[keras.Model, Path]:
    """The run's final model, else its last checkpoint (inference weights only)."""
    for path in (run.final_model, run.last_checkpoint):
        if path.is_file():
            return asc_tf.load_model(path), path
    raise QATError(f"run {run.run_id} has no trained model ({run.final_model} or {run.last_checkpoint}): "
                   "train it first")


def _fake_quant_accuracy(model: keras.Model, qat: Any, shards_dir: Path, config: Config) -> dict[str, float]:
    """Upstream's metrics of the QAT model (fake-quantized, float front end) on the dev-test split."""
    frontend = model.get_layer("frontend")
    forward = tf.function(lambda w: qat(frontend(w, training=False), training=False), reduce_retracing=True)
    metrics = MetricsAccumulator()
    for waveform, label, meta in make_dataset(shards_dir, "test", config, training=False, with_metadata=True):
        metrics.update(np.asarray(forward(waveform)), label.numpy(), files=meta["filename"].numpy())
    return metrics.compute()


def qat_finetune(config: Config, run: Run, epochs: int, overwrite: bool = False) -> QATResult:
    """Fine-tune run `run` (trained with `config`) for `epochs` QAT epochs; writes `<run>/qat/`."""
    if epochs < 1:
        raise QATError(f"--qat_epochs must be at least 1, got {epochs}")
    artefact = qat_artefact(run)
    if artefact.exists() and not overwrite:
        raise QATError(f"{artefact.path} exists: pass --overwrite to run QAT again")
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    model, source = _float_model(run)
    shards_dir = convert_dataset(config, progress=False)
    split = f"split{config.subset}"
    _, clips, _ = split_shards(shards_dir, split, verify="size")
    steps = epochs * -(-clips // config.batch_size)

    log.info("QAT: wrapping the network for quantization-aware training (tfmot); the first step traces the "
             "training graph before any progress shows")
    tk, tfmot = legacy_keras()
    qat = tfmot.quantization.keras.quantize_model(build_twin(model.get_layer("network"), tk))
    lr = config.lr * QAT_LR_FACTOR
    optimizer = tk.optimizers.AdamW(learning_rate=tk.optimizers.schedules.CosineDecay(lr, steps),
                                    weight_decay=config.weight_decay, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    loss_fn = tk.losses.SparseCategoricalCrossentropy(from_logits=True)
    frontend, mixstyle = model.get_layer("frontend"), model.get_layer("mixstyle")

    @tf.function(reduce_retracing=True)
    def augment(waveform: tf.Tensor) -> tf.Tensor:
        return mixstyle(frontend(waveform, training=True), training=True)

    @tf.function(reduce_retracing=True)
    def train_step(log_mel: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = qat(log_mel, training=True)
            loss = loss_fn(label, logits)
        grads = tape.gradient(loss, qat.trainable_variables)
        optimizer.apply_gradients(zip(grads, qat.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=label.dtype), label), tf.float32))
        return loss, correct

    history = []
    steps_per_epoch = steps // epochs
    log.info("QAT: %d epoch(s) of %d steps on %s (run epochs %d-%d), lr %g", epochs, steps_per_epoch, split,
             config.n_epochs + 1, config.n_epochs + epochs, lr)
    for e in range(epochs):
        epoch, started = config.n_epochs + e, time.perf_counter()
        reseed_layers(model, config.seed, epoch)
        losses, correct, seen = [], 0.0, 0
        bar = console.progress(steps_per_epoch, f"QAT {epoch_label(e, epochs)}", "steps")
        for waveform, label in make_dataset(shards_dir, split, config, training=True, epoch=epoch):
            loss, hits = train_step(augment(waveform), label)
            losses.append(float(loss))
            correct, seen = correct + float(hits), seen + int(label.shape[0])
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
            bar.update(1)
        bar.close()
        row = {"epoch": epoch, "train/loss": float(np.mean(losses)), "train/acc": correct / max(seen, 1),
               "seconds": time.perf_counter() - started}
        log.info("QAT %s: loss %.4f acc %.4f (%.0f s)", epoch_label(e, epochs), row["train/loss"], row["train/acc"],
                 row["seconds"])
        history.append(row)

    test = _fake_quant_accuracy(model, qat, shards_dir, config)
    log.info("QAT fake-quant test macro_avg_acc %.4f", test["macro_avg_acc"])
    copy_weights(qat, model.get_layer("network"))
    network_bytes = convert_qat_int8(qat, tk)
    audit = audit_tflite(network_bytes, artefact.network_file.name)
    log.info("QAT int8 network audit: %s", audit.verdict())
    artefact.path.mkdir(parents=True, exist_ok=True)
    artefact.info_file.unlink(missing_ok=True)  # incomplete until info.json is written again
    save_atomic(model, artefact.model_file)
    atomic_write_bytes(artefact.network_file, network_bytes)
    figures = audit.to_dict()
    figures.pop("rows")
    info = {"method": "qat", "tool": {"tensorflow-model-optimization": _version("tensorflow-model-optimization"),
                                      "tf-keras": _version("tf-keras")},
            "from": str(source), "epochs": epochs, "first_epoch": config.n_epochs, "steps": steps,
            "lr": {"schedule": "cosine", "peak": lr, "factor_of_run_lr": QAT_LR_FACTOR},
            "optimizer": {"name": "AdamW", "weight_decay": config.weight_decay}, "batch_size": config.batch_size,
            "seed": config.seed, "history": history,
            "test_fake_quant": {k: (None if np.isnan(v) else v) for k, v in test.items()},
            "audit": figures}
    atomic_write_json(artefact.info_file, info)
    log.info("QAT artefact written to %s", artefact.path)
    return QATResult(artefact, info)


def _version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
