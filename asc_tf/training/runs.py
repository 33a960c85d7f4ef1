"""Run directories on disk: `<project_dir>/<project_name>/<run_id>/` as upstream, never overwritten.

    config.json              the run's Config
    checkpoints/last.keras   model + optimizer state after the last completed epoch (atomic)
    history.csv              one row per completed epoch
    model.keras              the final model
    info.json, results.md, *.png   evaluation outputs
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import asc_tf
from asc_tf import storage
from asc_tf.config import Config
from asc_tf.io import atomic_write_json, remove_stale_temporaries
from asc_tf.training.errors import RunError

if TYPE_CHECKING:  # Keras loads with the first checkpoint: run ids and files are checked before TensorFlow
    import keras

log = logging.getLogger(__name__)

RUN_ID_ALPHABET = string.ascii_lowercase + string.digits
INFO_FILE = "info.json"  # a run's or an evaluation's metrics, MACs and Params
RESULTS_FILE = "results.md"  # an evaluation's report: predictions/<id>/ holds one once the run was evaluated


def new_run_id() -> str:
    """An 8-character id like W&B's (also used as the W&B run id)."""
    return "".join(secrets.choice(RUN_ID_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class Run:
    """Paths of one run."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.keras"

    @property
    def history_file(self) -> Path:
        return self.path / "history.csv"

    @property
    def final_model(self) -> Path:
        return self.path / "model.keras"

    def load_config(self) -> Config:
        try:
            return Config.from_dict(json.loads(self.config_file.read_text()))
        except (OSError, json.JSONDecodeError, ValueError, TypeError) as error:
            raise RunError(f"{self.config_file}: unreadable run configuration ({error})") from None


def runs_root(config: Config) -> Path:
    return Path(config.project_dir) / config.project_name


def create_run(config: Config, run_id: Optional[str] = None) -> Run:
    """A new run directory holding `config.json`; an existing one is never reused."""
    run = Run(runs_root(config) / (run_id or new_run_id()))
    try:
        (run.path / "checkpoints").mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise RunError(f"{run.path} already exists: runs are never overwritten; choose another id") from None
    atomic_write_json(run.config_file, config.to_dict())
    return run


def open_run(config: Config, run_id: str) -> Run:
    """An existing run, with an error listing the known ids when `run_id` is unknown."""
    root = runs_root(config)
    run = Run(root / run_id)
    if not run.config_file.is_file():
        known = sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []
        raise RunError(
            f"unknown run id '{run_id}': no {run.config_file}"
            + (f" (runs in {root}: {', '.join(known[:10])})" if known else f" ({root} holds no runs)")
        )
    for folder in (run.path, run.path / "checkpoints"):  # half-written checkpoints of a killed process
        remove_stale_temporaries(folder)
    return run


def discard_unstarted(run: Run) -> bool:
    """Remove the folder of a new run that failed before its first checkpoint (there is nothing in it to
    resume or evaluate); returns whether it was removed. A run with a checkpoint is always kept."""
    if run.last_checkpoint.exists():
        return False
    shutil.rmtree(run.path, ignore_errors=True)
    log.info("run %s stopped before its first checkpoint: its folder %s was removed", run.run_id, run.path)
    return True


def check_checkpoint(path: Path) -> Path:
    """`path` if it is a file, else the RunError saying why (a run killed before its first epoch ended): the
    check commands make before TensorFlow loads."""
    if path.is_file():
        return path
    run_dir = path.parent.parent
    if path.parent.name == "checkpoints" and (run_dir / "config.json").is_file():  # a run killed early
        raise RunError(f"{path} does not exist: run {run_dir.name} stopped before its first epoch ended, so "
                       f"there is nothing to resume or evaluate; start a new run (and delete {run_dir})")
    raise RunError(f"{path} does not exist")


def inference_model_file(run: Run) -> Path:
    """The model a finished run is evaluated and predicted with: its final model (the weights of its last
    checkpoint, float32), else the last checkpoint of an unfinished run."""
    return run.final_model if run.final_model.is_file() else run.last_checkpoint


def resumable_run(config: Config) -> Run:
    """The run `--resume` names, with its last checkpoint present (no TensorFlow: train.py asks first)."""
    run = open_run(config, str(config.resume))
    check_checkpoint(run.last_checkpoint)
    return run


def evaluable_run(config: Config) -> tuple[Run, Path]:
    """(run, its predictions folder) for `--evaluate --ckpt_id`: a known run with a model, not yet evaluated
    (results.md) unless `--overwrite` (no TensorFlow: train.py asks first)."""
    run = model_run(config, str(config.ckpt_id))
    out_dir = Path(config.project_dir) / "predictions" / run.run_id
    if (out_dir / RESULTS_FILE).exists() and not config.overwrite:
        raise RunError(f"{out_dir / RESULTS_FILE} exists (run {run.run_id} was evaluated): pass --overwrite to "
                       "evaluate again")
    return run, out_dir


def model_run(config: Config, run_id: str) -> Run:
    """A known run with a model to evaluate or predict with (`inference_model_file`), checked without TensorFlow."""
    run = open_run(config, run_id)
    check_checkpoint(inference_model_file(run))
    return run


def load_checkpoint(path: Path) -> keras.Model:
    """A model with its optimizer state, with a clear error for a missing or damaged file."""
    check_checkpoint(path)
    try:
        return asc_tf.load_model(path, compile=True)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for a damaged zip)
        raise RunError(f"{path}: cannot load the checkpoint ({type(error).__name__}: {error})") from None


def save_atomic(model: keras.Model, path: Path) -> None:
    """`model.save` under a temporary name, then rename: a kill never leaves a half-written checkpoint."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")  # Keras insists on the .keras suffix
    try:
        model.save(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        storage.maybe_kill(path)  # tests' SIGKILL just before the rename (ASC_TF_FAULT_KILL_AT)
        os.replace(tmp, path)
    except OSError as error:  # full disk, size limit, read-only: one line (storage.ResourceError), not Keras's trace
        translated = storage.resource_error(error, path)
        if translated is None:
            raise
        raise translated from error
    finally:
        tmp.unlink(missing_ok=True)
