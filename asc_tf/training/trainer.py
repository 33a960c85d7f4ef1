"""The upstream recipe on tf.data: AdamW + warm-up/cosine per step, validation on the dev-test split,
W&B, a checkpoint per epoch, resume, and upstream's evaluation in float32 and float16.

Each epoch is one `model.fit` call over the dataset of that epoch (`make_dataset(epoch=e)`) with the
model's random layers reseeded from (seed, epoch): what an epoch sees and draws depends only on the seed
and its number, so a run resumed from its last checkpoint ends exactly like an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import keras
import pandas as pd
import tensorflow as tf

from asc_tf.config import Config
from asc_tf.console import is_terminal
from asc_tf.data.convert import convert_dataset
from asc_tf.data.pipeline import corrupt_shard_error, make_dataset, split_shards
from asc_tf.io import atomic_write_text
from asc_tf.model import build_model
from asc_tf.training.errors import StrategyError
from asc_tf.training.evaluation import evaluate, write_evaluation
from asc_tf.training.metrics import prefixed
from asc_tf.training.optimizer import TorchAdamW
from asc_tf.training.precision import float32_copy, network_policy, precision_label, wrap_optimizer
from asc_tf.training.progress import EpochProgress, epoch_label
from asc_tf.training.runs import Run, create_run, discard_unstarted, load_checkpoint, resumable_run, save_atomic
from asc_tf.training.schedule import WarmupCosine, total_steps
from asc_tf.training.seeding import reseed_layers
from asc_tf.training.xla import no_strict_xla, use_xla

log = logging.getLogger(__name__)

LOG_EVERY_N_STEPS = 50  # Lightning's default log_every_n_steps


@dataclass
class TrainResult:
    run: Run
    metrics: dict[str, float]  # test/* (float16, as upstream's trainer.test) and val/* (float32)
    shards_dir: Path


# ----------------------------------------------------------------------------------------------
# Devices


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy over all GPUs when there are several, else the default (one device);
    `mirrored`: MirroredStrategy over every visible device of one kind (GPUs, else CPUs: tests use two
    logical CPUs); `multiworker` is refused with the reason (Keras 3 cannot fit under it)."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "multiworker":
        # Reproduced here with a two-layer model and two workers on localhost (TF 2.21, Keras 3.15): fit
        # fails with "Attempt to convert a value (PerReplica...)"; keras-team/keras#20585 is open.
        raise StrategyError(
            "--strategy multiworker: Keras 3's model.fit cannot train under MultiWorkerMirroredStrategy "
            "(TF 2.21 / Keras 3.15, keras-team/keras#20585); train on one host with --strategy auto or mirrored"
        )
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


# ----------------------------------------------------------------------------------------------
# Model and optimizer


def compile_model(model: keras.Model, config: Config, steps: int) -> None:
    """Upstream's optimizer and loss: torch-arithmetic AdamW (decay on all parameters, eps 1e-8) with the
    warm-up + cosine schedule per step; mean cross-entropy on logits, no label smoothing."""
    schedule = WarmupCosine(config.lr, config.warmup_steps, steps, dtype="float32")
    optimizer = TorchAdamW(learning_rate=schedule, weight_decay=config.weight_decay, beta_1=0.9, beta_2=0.999,
                           epsilon=1e-8)
    model.compile(optimizer=wrap_optimizer(optimizer, config.precision),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")], jit_compile=False)  # see xla.py
    # Its moments made now (zeros, as Keras would at the first step): built inside the first traced step they make
    # tf.function trace the whole step twice (14.5 -> 6.7 s of the demo's first step on this Xeon).
    model.optimizer.build(model.trainable_variables)


# ----------------------------------------------------------------------------------------------
# Logging


class StepLogger(keras.callbacks.Callback):
    """Logs `lr` and the step's `train/loss` every 50 optimizer steps to W&B, as upstream's Lightning module
    (written by hand: Keras' W&B callbacks use other names, and Keras reports the epoch's running mean,
    from which the step's loss is recovered: batches before the last one of an epoch are equal in size)."""

    def __init__(self, wandb_run: Any) -> None:
        super().__init__()
        self.wandb_run = wandb_run
        self._previous_mean = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        mean = float((logs or {}).get("loss", float("nan")))
        step_loss = (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        step = int(self.model.optimizer.iterations.numpy())
        if self.wandb_run is not None and step % LOG_EVERY_N_STEPS == 0:
            lr = float(self.model.optimizer.learning_rate.numpy())
            self.wandb_run.log({"lr": lr, "train/loss": step_loss, "trainer/global_step": step}, step=step)


def start_wandb(config: Config, run: Run, resume: bool) -> Any:
    """A W&B run with the run's id, project, name, tags and config; offline without a login."""
    if config.wandb == "disabled":
        return None
    import wandb

    mode = config.wandb
    if mode == "auto":
        mode = "online" if (os.environ.get("WANDB_API_KEY") or _wandb_logged_in()) else "offline"
    if mode == "offline":
        log.info("W&B offline: sync later with `wandb sync %s/wandb`", run.path)
    return wandb.init(project=config.project_name, name=config.experiment_name, id=run.run_id, tags=["DCASE24"],
                      config=config.to_dict(), dir=str(run.path), mode=mode, resume="allow" if resume else None,
                      notes="asc-tf port of the DCASE2024 Task 1 baseline",
                      group=os.environ.get("WANDB_RUN_GROUP"))  # read here: wandb's settings of an earlier
    # wandb.init in this process would otherwise win (asc_tf.protocol sets the group per run)


def _wandb_logged_in() -> bool:
    try:
        import netrc

        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


# ----------------------------------------------------------------------------------------------
# Training


def _append_history(run: Run, row: dict[str, Any], epoch: int) -> pd.DataFrame:
    """history.csv with this epoch's row; rows of epochs >= `epoch` (from a killed run) are replaced."""
    history = pd.read_csv(run.history_file) if run.history_file.exists() else pd.DataFrame()
    if not history.empty:
        history = history[history["epoch"] < epoch]
    history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
    atomic_write_text(run.history_file, history.to_csv(index=False))
    return history


def _completed_epochs(model: keras.Model, run: Run, steps_per_epoch: int) -> int:
    """Epochs in a checkpoint: from the optimizer's step counter; under float16 loss scaling, which does not count
    the steps it skips on overflow, from history.csv (written right after each checkpoint)."""
    if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
        if not run.history_file.exists():
            return 0
        epochs = pd.read_csv(run.history_file)["epoch"]
        return int(epochs.max()) + 1 if len(epochs) else 0
    return int(model.optimizer.iterations.numpy()) // steps_per_epoch


def _qat_step(config: Config, run: Run, wandb_run: Any) -> dict[str, float]:
    """`--qat_epochs N`: quantization-aware fine-tuning into `<run>/qat/` (kept if a resumed run already has it)."""
    from asc_tf.qat import qat_artefact
    from asc_tf.qat.finetune import qat_finetune

    artefact = qat_artefact(run)
    info = artefact.info() if artefact.exists() else qat_finetune(config, run, config.qat_epochs).info
    metrics = {"qat/test_fake_quant_macro_avg_acc": float(info["test_fake_quant"]["macro_avg_acc"])}
    if wandb_run is not None:
        wandb_run.summary.update(metrics)
    return metrics


def train(config: Config, *, verbose: int | str = 0, progress: bool = True,
          on_start: Optional[Callable[[Run], None]] = None, run_id: Optional[str] = None,
          keep_run_wandb: bool = False) -> TrainResult:
    """Train a new run (or `config.resume` one) with upstream's recipe; returns the run and its metrics.
    `on_start(run)` is called once the run directory exists (the command line prints the run id).
    `progress`: a bar per epoch on a terminal, a line per epoch elsewhere; `verbose`: Keras' own fit output
    (0, the default, leaves progress to `progress`); `run_id` names a new run (default: a random id;
    asc_tf.protocol gives each (split, seed) a fixed one); `keep_run_wandb`: a resumed run keeps the W&B mode it
    was made with instead of `config.wandb` (train.py, when --wandb is not given again)."""
    config.check()
    if config.resume:  # the run's own configuration; only where to log and find runs come from the command line
        run = resumable_run(config)
        saved = run.load_config()
        config = saved.replace(resume=config.resume, wandb=saved.wandb if keep_run_wandb else config.wandb,
                               project_dir=config.project_dir)
    else:
        run = None
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    use_xla(config.jit_compile)
    strategy = make_strategy(config.strategy)
    shards_dir = convert_dataset(config, progress=progress and is_terminal())  # else one line at the end
    split = f"split{config.subset}"
    _, clips, _ = split_shards(shards_dir, split, verify="size")
    steps_per_epoch = -(-clips // config.batch_size)
    if run is not None:
        with strategy.scope():
            model = no_strict_xla(load_checkpoint(run.last_checkpoint))
        start_epoch = _completed_epochs(model, run, steps_per_epoch)
        log.info("resuming run %s after epoch %d of %d (step %d)", run.run_id, start_epoch, config.n_epochs,
                 start_epoch * steps_per_epoch)
    else:
        with strategy.scope():
            model = build_model(config, network_dtype=network_policy(config.precision))
            compile_model(model, config, total_steps(config.n_epochs, clips, config.batch_size))
        run = create_run(config, run_id)  # once the model builds: a bad configuration leaves no run folder
        start_epoch = 0
    if on_start is not None:
        on_start(run)
    replicas = strategy.num_replicas_in_sync
    log.info("training %d epoch(s) of %d steps (%d clips of %s, batch %d, %s%s)", config.n_epochs - start_epoch,
             steps_per_epoch, clips, split, config.batch_size, precision_label(config.precision),
             f", {type(strategy).__name__} over {replicas} replicas" if replicas > 1 else "")
    wandb_run, finished = None, False
    try:
        wandb_run = start_wandb(config, run, resume=bool(config.resume))
        callbacks = [StepLogger(wandb_run), EpochProgress(config.n_epochs, steps_per_epoch, bar=progress and is_terminal())]
        validation = None  # the last epoch's, reused as the float32 test evaluation of the same weights
        for epoch in range(start_epoch, config.n_epochs):
            started = time.perf_counter()
            reseed_layers(model, config.seed, epoch)
            train_ds = make_dataset(shards_dir, split, config, training=True, epoch=epoch)
            fit = model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose, callbacks=callbacks,
                            shuffle=False)  # the dataset shuffles itself
            row: dict[str, Any] = {"epoch": epoch, "step": int(model.optimizer.iterations.numpy()),
                                   "lr": float(model.optimizer.learning_rate.numpy()),
                                   "train/loss": float(fit.history["loss"][-1]),
                                   "train/acc": float(fit.history["acc"][-1])}
            last = epoch == config.n_epochs - 1
            if last or (config.val_every > 0 and (epoch + 1) % config.val_every == 0):
                validation = evaluate(model, shards_dir, config)
                row.update(prefixed(validation.compute(), "val/"))
                log.info("%s: val/macro_avg_acc %.4f val/loss %.4f", epoch_label(epoch, config.n_epochs),
                         row["val/macro_avg_acc"], row["val/loss"])
            row["seconds"] = time.perf_counter() - started
            save_atomic(model, run.last_checkpoint)
            _append_history(run, row, epoch)
            if wandb_run is not None:
                wandb_run.log({**row, "epoch": epoch}, step=row["step"])
        log.info("evaluating on the test split (float32 and float16)")
        final = float32_copy(model, config)  # mixed-precision runs end as float32 models, like every other run
        save_atomic(final, run.final_model)
        metrics = write_evaluation(final, run.path, shards_dir, config, run, wandb_run,
                                   float32=validation if final is model else None)
        if config.qat_epochs > 0:
            metrics.update(_qat_step(config, run, wandb_run))
        finished = True
    except tf.errors.DataLossError as error:  # a corrupt record: TensorFlow names no file, this names the shard
        raise corrupt_shard_error(shards_dir, error) from None
    finally:
        if wandb_run is not None:
            wandb_run.finish()
        if not finished and not config.resume:  # failed before its first checkpoint: leave no dead run folder
            discard_unstarted(run)
    return TrainResult(run, metrics, shards_dir)
