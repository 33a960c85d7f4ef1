"""End-of-training evaluation as upstream: the dev-test split in float32 (`val/`) and float16 (`test/`,
upstream's `trainer.test` after `model.half()`), written as info.json, results.md and pictures."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from asc_tf.complexity import complexity_rows, totals
from asc_tf.config import Config
from asc_tf.data.convert import convert_dataset
from asc_tf.data.pipeline import make_dataset
from asc_tf.model import build_network
from asc_tf.training.metrics import MetricsAccumulator, prefixed
from asc_tf.training.report import write_run_report
from asc_tf.training.runs import Run, RunError, load_checkpoint, open_run

MAX_MACS = 30_000_000
MAX_PARAMS_MEMORY = 128_000

log = logging.getLogger(__name__)


def float16_model(model: keras.Model, config: Config) -> Callable[[tf.Tensor], tf.Tensor]:
    """Upstream's test-time precision: float32 front end, then the network in float16 (`model.half()`)
    on the float16-cast log-mel."""
    network16 = build_network(config, dtype="float16")
    network16.set_weights([w.astype(np.float16) for w in model.get_layer("network").get_weights()])
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
                     wandb_run: Any = None) -> dict[str, float]:
    """Evaluate in both precisions, write the reports into `out_dir`, log them to W&B; returns test/* and val/*."""
    full = evaluate(model, shards_dir, config, "float32")
    half = evaluate(model, shards_dir, config, "float16")
    params, macs = totals(complexity_rows(model))
    history = pd.read_csv(run.history_file).to_dict("list") if run.history_file.exists() else {}
    written = write_run_report(out_dir, half.compute(), half.confusion, history=history, macs=macs, params=params,
                               label=f"split{config.subset}",
                               info_extra={"val": [prefixed(full.compute(), "val/")], "run_id": run.run_id})
    metrics = {**prefixed(half.compute(), "test/"), **prefixed(full.compute(), "val/")}
    log.info("test (float16) macro_avg_acc %.4f, val (float32) macro_avg_acc %.4f",
             metrics["test/macro_avg_acc"], metrics["val/macro_avg_acc"])
    if wandb_run is not None:
        import wandb

        wandb_run.summary.update({**metrics, "MACs": macs, "Parameters": params})
        wandb_run.log({name: wandb.Image(str(path)) for name, path in written.items() if str(path).endswith(".png")})
    return metrics


def evaluate_run(config: Config) -> dict[str, float]:
    """Upstream's `--evaluate --ckpt_id ID`: the run's last checkpoint, its complexity against the challenge
    limits, and the dev-test metrics, written to `<project_dir>/predictions/<id>/` (info.json, results.md,
    pictures); an existing evaluation is kept unless `--overwrite`."""
    run = open_run(config, str(config.ckpt_id))
    out_dir = Path(config.project_dir) / "predictions" / run.run_id
    if (out_dir / "info.json").exists() and not config.overwrite:
        raise RunError(f"{out_dir / 'info.json'} exists: pass --overwrite to evaluate again")
    run_config = run.load_config().replace(project_dir=config.project_dir)
    model = load_checkpoint(run.last_checkpoint)
    params, macs = totals(complexity_rows(model))
    allowed_bits = int(MAX_PARAMS_MEMORY / params * 8)
    log.info("Model Complexity: MACs: %s, Params: %s (at most %d bits per parameter)", f"{macs:,}", f"{params:,}",
             allowed_bits)
    if macs > MAX_MACS or params > MAX_PARAMS_MEMORY:  # upstream's asserts
        raise RunError(f"run {run.run_id} exceeds the challenge limits: {macs:,} MACs (max {MAX_MACS:,}), "
                       f"{params:,} parameters (max {MAX_PARAMS_MEMORY:,})")
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_evaluation(model, out_dir, convert_dataset(run_config, progress=False), run_config, run)
