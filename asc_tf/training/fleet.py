"""Many runs of the training recipe, each a fixed run id and a Config: run one after another in this process,
or as Ray tasks on a cluster, where a task whose worker dies is retried and resumes from the run's last
checkpoint. Finished runs are skipped, so rerunning a driver only does what is left.

Shared by `asc_tf.protocol` (splits x seeds); any other many-runs driver builds its own `RunSpec`s.
Ray is imported only by `run_on_ray`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Optional

from asc_tf.config import Config
from asc_tf.training.runs import Run, RunError, runs_root

log = logging.getLogger(__name__)

# Fields that may differ between the saved and the requested configuration of a run: where things are
# logged or how fast they run, never what is trained.
NOT_RECIPE = frozenset({"wandb", "num_workers", "resume", "project_dir", "strategy", "evaluate", "ckpt_id", "demo",
                        "overwrite"})
PATH_FIELDS = ("dataset_dir", "split_dir", "tfrecords_dir", "project_dir")
RAY_MISSING = "Ray is not installed: pip install -r requirements-protocol.txt (an optional extra of asc-tf)"


class FleetError(RuntimeError):
    """Runs that could not be done (or a run folder that does not match its recipe); the message names them."""


@dataclass(frozen=True)
class RunSpec:
    """One run to do: its fixed id, its full configuration, and the W&B group it belongs to."""

    run_id: str
    config: Config
    group: Optional[str] = None

    @property
    def run(self) -> Run:
        return Run(runs_root(self.config) / self.run_id)

    @property
    def label(self) -> str:
        return f"{self.run_id} (split{self.config.subset}, seed {self.config.seed})"


def absolute_paths(config: Config) -> Config:
    """`config` with its data and run folders made absolute: Ray workers start in folders of their own, and on
    a cluster these paths must name the same shared storage on every machine."""
    return config.replace(**{name: str(Path(getattr(config, name)).resolve())
                             for name in PATH_FIELDS if getattr(config, name) is not None})


def is_finished(run: Run, config: Config) -> bool:
    """A run is finished when its final model and report exist (and its QAT artefact, when it has QAT)."""
    if not (run.final_model.is_file() and (run.path / "info.json").is_file()):
        return False
    if config.qat_epochs > 0:
        from asc_tf.qat import qat_artefact

        return qat_artefact(run).exists()
    return True


def status(spec: RunSpec) -> str:
    """`new` (no folder), `empty` (folder but no completed epoch), `resumable` or `finished`."""
    run = spec.run
    if not run.config_file.is_file():
        return "new"
    check_same_recipe(spec)
    if is_finished(run, spec.config):
        return "finished"
    return "resumable" if run.last_checkpoint.is_file() else "empty"


def check_same_recipe(spec: RunSpec) -> None:
    """FleetError when the run folder of `spec` was made with another recipe (a rerun with changed flags)."""
    saved = spec.run.load_config()
    for f in fields(Config):
        if f.name in NOT_RECIPE:
            continue
        old, new = getattr(saved, f.name), getattr(spec.config, f.name)
        if old != new:
            raise FleetError(f"{spec.run.config_file}: this run was started with --{f.name} {old}, now {new}: "
                             f"rerun with the same flags, or choose another --group for a new set of runs")


@contextlib.contextmanager
def _wandb_group(group: Optional[str]) -> Iterator[None]:
    """W&B reads the run's group from WANDB_RUN_GROUP (wandb.init's `group`), set for the duration of a run."""
    saved = os.environ.get("WANDB_RUN_GROUP")
    if group:
        os.environ["WANDB_RUN_GROUP"] = group
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WANDB_RUN_GROUP", None)
        else:
            os.environ["WANDB_RUN_GROUP"] = saved


def execute(spec: RunSpec, *, verbose: int | str = "auto", progress: bool = True) -> Path:
    """Bring one run to its end: nothing if finished, resumed from its last checkpoint if it has one, else
    started under its fixed id. Returns the run folder. The same function runs locally and in a Ray task."""
    from asc_tf.training.trainer import train

    state = status(spec)
    if state == "finished":
        log.info("%s: finished already", spec.label)
        return spec.run.path
    with _wandb_group(spec.group):
        if state == "resumable":
            log.info("%s: resuming from %s", spec.label, spec.run.last_checkpoint)
            train(spec.config.replace(resume=spec.run_id), verbose=verbose, progress=progress)
        else:
            if state == "empty":  # started but stopped before its first checkpoint: nothing in it to keep
                log.info("%s: restarting (stopped before its first epoch ended)", spec.label)
                shutil.rmtree(spec.run.path)
            train(spec.config, verbose=verbose, progress=progress, run_id=spec.run_id)
    if not is_finished(spec.run, spec.config):
        raise RunError(f"{spec.run.path}: training returned but the run has no final model and report")
    return spec.run.path


def limit_threads(threads: Optional[int]) -> None:
    """Let TensorFlow use `threads` threads (a run's share of a machine); must precede TensorFlow's first op."""
    if not threads:
        return
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised in this process: its thread pools are fixed
        log.warning("TensorFlow is already initialised: cannot limit it to %d threads", threads)


def run_locally(specs: list[RunSpec], *, threads: Optional[int] = None, verbose: int | str = "auto",
                progress: bool = True) -> list[Path]:
    """The runs one after another in this process (finished ones skipped); the first error stops."""
    limit_threads(threads)
    paths = []
    for number, spec in enumerate(specs, 1):
        log.info("run %d of %d: %s", number, len(specs), spec.label)
        paths.append(execute(spec, verbose=verbose, progress=progress))
    return paths


# ----------------------------------------------------------------------------------------------------- Ray
def _ray_run(spec: RunSpec, threads: Optional[int]) -> str:
    """Body of a Ray task: one run in a fresh worker process (TensorFlow's threads and memory are per process)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    limit_threads(threads)
    return str(execute(spec, verbose=0, progress=False))


def _ray_convert(config: Config) -> str:
    """Body of the Ray task that converts the dataset once, before runs that all read it start."""
    from asc_tf.data.convert import convert_dataset

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return str(convert_dataset(config, progress=False))


@dataclass(frozen=True)
class RayOptions:
    """Where and with what each run is done on a Ray cluster."""

    address: str = "auto"  # "auto" (a cluster started on this machine), "HOST:6379", or "ray://HOST:10001"
    gpus_per_run: Optional[float] = None  # None: 1 when the cluster has GPUs, else 0
    cpus_per_run: Optional[float] = None  # None: 1 beside a GPU, else 2
    max_retries: int = 3  # retries of a run whose worker or machine dies
    ship_code: bool = True  # send this asc_tf package to the workers (else they import their own install)
    env: Optional[dict[str, str]] = None  # environment variables of the workers


def _resources(ray: Any, options: RayOptions) -> tuple[float, float]:
    gpus = options.gpus_per_run
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    cpus = options.cpus_per_run if options.cpus_per_run is not None else (1.0 if gpus else 2.0)
    return cpus, gpus


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FleetError(RAY_MISSING) from None
    return ray


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """FleetError at once when a HOST:PORT (or ray://HOST:PORT) address does not answer: Ray itself retries
    an unreachable cluster for minutes before it gives up."""
    if address == "auto" or ":" not in address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as error:
        raise FleetError(f"no Ray cluster answers at {address} ({error}): start one with `ray start --head` "
                         f"(see docs/protocol.md), check the address, or run without --address") from None


def run_on_ray(specs: list[RunSpec], options: RayOptions) -> list[Path]:
    """The runs as Ray tasks (each with its CPUs/GPU; a task whose worker dies is retried and resumes); the
    dataset is converted once first. Waits for all; FleetError lists the runs that failed."""
    ray = _import_ray()
    check_reachable(options.address)
    import asc_tf

    runtime_env: dict[str, Any] = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", **(options.env or {})}}
    if options.ship_code:
        runtime_env["py_modules"] = [str(Path(asc_tf.__file__).parent)]
    try:
        ray.init(address=options.address, runtime_env=runtime_env, logging_level=logging.WARNING,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise FleetError(f"cannot connect to the Ray cluster at {options.address} ({error}): start it with "
                         f"`ray start --head` (see docs/protocol.md) or run without --address") from None
    try:
        cpus, gpus = _resources(ray, options)
        log.info("Ray cluster %s: %s; each run takes %g CPU(s) and %g GPU(s)", options.address,
                 ray.cluster_resources(), cpus, gpus)
        todo = [spec for spec in specs if status(spec) != "finished"]
        conversions = {(s.config.dataset_dir, s.config.tfrecords_dir, s.config.storage_dtype,
                        s.config.clips_per_shard): s.config for s in todo}
        convert = ray.remote(num_cpus=cpus, max_retries=options.max_retries)(_ray_convert)
        ray.get([convert.remote(config) for config in conversions.values()])
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=options.max_retries, retry_exceptions=False,
                          max_calls=1)(_ray_run)
        threads = max(1, int(cpus))
        pending = {task.options(name=spec.run_id).remote(spec, threads): spec for spec in todo}
        failed: list[str] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(ready[0])
            try:
                ray.get(ready[0])
                log.info("done: %s (%d of %d left)", spec.label, len(pending), len(todo))
            except ray.exceptions.RayError as error:
                cause = getattr(error, "cause", None) or error
                reason = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
                log.error("failed: %s: %s", spec.label, reason)
                failed.append(f"{spec.label}: {reason}")
        if failed:
            raise FleetError(f"{len(failed)} of {len(todo)} run(s) failed: " + "; ".join(failed))
    finally:
        ray.shutdown()
    return [spec.run.path for spec in specs]
