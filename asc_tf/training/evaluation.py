"""End-of-training evaluation as upstream: the dev-test split in float32 (`val/`) and float16 (`test/`,
upstream's `trainer.test` after `model.half()`), written as info.json, results.md and pictures."""

from __future__ import annotations

import json
import logging
import shutil
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from asc_tf.complexity import complexity_rows, totals
from asc_tf.config import Config
from asc_tf.data.convert import convert_dataset
from asc_tf.data.pipeline import make_dataset
from asc_tf.io import atomic_write_json
from asc_tf.training.metrics import MetricsAccumulator, prefixed
from asc_tf.training.precision import float32_copy
from asc_tf.training.report import INFO_FILE, write_run_report
from asc_tf.training.runs import Run, RunError, evaluable_run, inference_model_file, load_checkpoint

MAX_MACS = 30_000_000
MAX_PARAMS_MEMORY = 128_000

log = logging.getLogger(__name__)


def half_network(network: keras.Model) -> keras.Model:
    """A copy of `network` computing in float16 with its weights cast to float16 (upstream's `model.half()`)."""

    def to_float16(layer: keras.layers.Layer) -> keras.layers.Layer:
        settings = layer.get_config()
        settings["dtype"] = "float16"
        return layer.__class__.from_config(settings)

    half = keras.models.clone_model(network, clone_function=to_float16)
    half.set_weights([w.astype(np.float16) for w in network.get_weights()])
    return half


def float16_model(model: keras.Model, config: Optional[Config] = None) -> Callable[[tf.Tensor], tf.Tensor]:
    """Upstream's test-time precision, the one rule of every Keras evaluation and prediction: float32 front end,
    then the network in float16 (`model.half()`) on the float16-cast log-mel. (`config` is not needed: the
    network's own architecture is copied.)"""
    network16 = half_network(model.get_layer("network"))
    frontend = model.get_layer("frontend")

    @tf.function(reduce_retracing=True)
    def forward(waveform: tf.Tensor) -> tf.Tensor:
        return network16(tf.cast(frontend(waveform, training=False), tf.float16), training=False)

    return forward


_FORWARDS: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


def _float32_forward(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """One compiled inference function per model, reused at every validation (no retracing per epoch);
    called outside any distribution strategy, so every replica's copy of the weights is the same."""
    if model not in _FORWARDS:
        ref = weakref.ref(model)
        _FORWARDS[model] = tf.function(lambda w: ref()(w, training=False), reduce_retracing=True)
    return _FORWARDS[model]


def evaluate(model: keras.Model, shards_dir: Path, config: Config, precision: str = "float32"
             ) -> MetricsAccumulator:
    """Upstream's metrics on the dev-test split, batch by batch as upstream's validation loop."""
    if precision == "float16":
        forward = float16_model(model, config)
    else:
        forward = _float32_forward(model)
    metrics = MetricsAccumulator()
    for waveform, label, meta in make_dataset(shards_dir, "test", config, training=False, with_metadata=True):
        metrics.update(np.asarray(forward(waveform)), label.numpy(), files=meta["filename"].numpy())
    return metrics


def write_evaluation(model: keras.Model, out_dir: Path, shards_dir: Path, config: Config, run: Run,
                     wandb_run: Any = None, with_files: bool = False, model_file: Optional[Path] = None,
                     float32: Optional[MetricsAccumulator] = None) -> Any:
    """Evaluate in both precisions, write the reports into `out_dir`, log them to W&B; returns test/* and val/*
    (and the written file names with `with_files`). `float32`: this model's float32 evaluation when it was
    just made (the last epoch's validation), not computed twice."""
    full = float32 if float32 is not None else evaluate(model, shards_dir, config, "float32")
    half = evaluate(model, shards_dir, config, "float16")
    params, macs = totals(complexity_rows(model))
    history = pd.read_csv(run.history_file).to_dict("list") if run.history_file.exists() else {}
    written = write_run_report(out_dir, half.compute(), half.confusion, history=history, macs=macs, params=params,
                               label=f"split{config.subset}",
                               info_extra={"val": [prefixed(full.compute(), "val/")], "run_id": run.run_id,
                                           **({"model": str(model_file)} if model_file else {})},
                               run_id=run.run_id)
    metrics = {**prefixed(half.compute(), "test/"), **prefixed(full.compute(), "val/")}
    log.debug("test (float16) macro_avg_acc %.4f, val (float32) macro_avg_acc %.4f",
              metrics["test/macro_avg_acc"], metrics["val/macro_avg_acc"])
    if wandb_run is not None:
        import wandb

        wandb_run.summary.update({**metrics, "MACs": macs, "Parameters": params})
        wandb_run.log({name: wandb.Image(str(path)) for name, path in written.items() if str(path).endswith(".png")})
    return (metrics, list(written)) if with_files else metrics


@dataclass
class RunEvaluation:
    """What `evaluate_run` measured and wrote."""

    metrics: dict[str, float]
    out_dir: Path
    model_file: Path
    written: list[str]


def evaluate_run(config: Config) -> RunEvaluation:
    """Upstream's `--evaluate --ckpt_id ID`, dev-test half: the run's model, its complexity against the challenge
    limits, and the dev-test metrics written to `<project_dir>/predictions/<id>/` (info.json, results.md,
    pictures). An earlier evaluation (results.md) is kept unless `--overwrite`; predict.py's files are not
    an evaluation and never block it. The evaluation set's output.csv is written by `asc_tf.predict`."""
    run, out_dir = evaluable_run(config)
    run_config = run.load_config().replace(project_dir=config.project_dir)
    model_file = inference_model_file(run)
    model = float32_copy(load_checkpoint(model_file), run_config)
    params, macs = totals(complexity_rows(model))
    allowed_bits = int(MAX_PARAMS_MEMORY / params * 8)
    log.info("Model Complexity: MACs: %s, Params: %s (at most %d bits per parameter)", f"{macs:,}", f"{params:,}",
             allowed_bits)
    if macs > MAX_MACS or params > MAX_PARAMS_MEMORY:  # upstream's asserts
        raise RunError(f"run {run.run_id} exceeds the challenge limits: {macs:,} MACs (max {MAX_MACS:,}), "
                       f"{params:,} parameters (max {MAX_PARAMS_MEMORY:,})")
    shards_dir = convert_dataset(run_config, progress=False)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("evaluating %s on the dev-test split (float32 and float16)", model_file)
    previous = _read_json(out_dir / INFO_FILE)  # predict.py's record of its output.csv stays
    try:
        metrics, written = write_evaluation(model, out_dir, shards_dir, run_config, run, with_files=True,
                                            model_file=model_file)
    except BaseException:
        if created:  # a failed evaluation leaves no half-filled predictions/<id>/ behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    if previous:
        atomic_write_json(out_dir / INFO_FILE, {**previous, **_read_json(out_dir / INFO_FILE)})
    return RunEvaluation(metrics, out_dir, model_file, written)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
