"""Evaluation-set predictions in upstream's submission format (`predictions/<id>/output.csv`).

Clips are read and resampled to 32 kHz with the project's resampler, in a background thread pool, and
predicted in batches; rows are streamed to a temporary file, so memory does not grow with the set.
Everything is written into a temporary folder that is renamed into place at the end: a failure never
leaves a half-written prediction behind.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

import numpy as np

from asc_tf import console
from asc_tf.data.audio import AudioFileError, load_any_clip
from asc_tf.data.meta import CLASSES, EVAL_DIR_NAME, MetadataError, read_file_list
from asc_tf.errors import PredictionError
from asc_tf.io import atomic_write_json, staging_dir, temporary_prefix

if TYPE_CHECKING:
    from asc_tf.config import Config

log = logging.getLogger(__name__)

EVAL_LIST = Path("evaluation_setup") / "fold1_test.csv"
CLIP_SECONDS = 1.0


@dataclass(frozen=True)
class EvaluationSet:
    """An evaluation folder and its file list (paths relative to the folder, e.g. `audio/0.wav`)."""

    root: Path
    files: tuple[str, ...]
    listing: Optional[Path] = None  # the file list they come from


def find_evaluation_set(eval_dir: Optional[str | Path], dataset_dir: Optional[str | Path]) -> EvaluationSet:
    """`eval_dir`, else upstream's place: `TAU-urban-acoustic-scenes-2024-mobile-evaluation` next to the
    development set. Its list is `evaluation_setup/fold1_test.csv` (or `meta.csv`)."""
    if eval_dir is None:
        if dataset_dir is None:
            raise PredictionError("no evaluation set: pass --eval_dir, or --dataset_dir (the evaluation set is "
                                  f"looked up next to it as {EVAL_DIR_NAME})")
        eval_dir = Path(dataset_dir).resolve().parent / EVAL_DIR_NAME
    root = Path(eval_dir)
    for candidate in (root / EVAL_LIST, root / "meta.csv"):
        if candidate.is_file():
            try:
                files = tuple(read_file_list(candidate)["filename"])
            except MetadataError as error:
                raise PredictionError(str(error)) from None
            if not files:
                raise PredictionError(f"{candidate}: the file list is empty")
            return EvaluationSet(root, files, candidate)
    raise PredictionError(f"no evaluation file list in {root}: expected {root / EVAL_LIST} (or meta.csv)")


def _load(root: Path, filename: str, sample_rate: int, listing: Optional[Path] = None) -> np.ndarray:
    if listing is not None and not (root / filename).exists():  # the row, not the file, is what to fix
        raise AudioFileError(f"{root / filename}: listed in {listing} but missing on disk: restore the file or "
                             f"remove its row from the list")
    clip = load_any_clip(root / filename, sample_rate)
    expected = int(round(sample_rate * CLIP_SECONDS))
    if clip.shape[0] != expected:
        raise AudioFileError(f"{root / filename}: {clip.shape[0] / sample_rate:g} s long, expected {CLIP_SECONDS:g} s")
    return clip


def batches(evaluation: EvaluationSet, sample_rate: int, batch_size: int, workers: int = 4
            ) -> Iterator[tuple[list[str], np.ndarray]]:
    """(file names, waveforms [B, samples]) in list order; clips are read ahead in a thread pool
    (soundfile and numpy release the GIL), at most two batches ahead."""
    files = list(evaluation.files)
    chunks = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]

    def load_chunk(chunk: list[str]) -> np.ndarray:
        return np.stack([_load(evaluation.root, f, sample_rate, evaluation.listing) for f in chunk])

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        pending = [pool.submit(load_chunk, c) for c in chunks[:2]]
        for index, chunk in enumerate(chunks):
            waveforms = pending.pop(0).result()
            if index + 2 < len(chunks):
                pending.append(pool.submit(load_chunk, chunks[index + 2]))
            yield chunk, waveforms


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def write_predictions(
    out_dir: Path,
    evaluation: EvaluationSet,
    predict_probabilities: Callable[[np.ndarray], np.ndarray],
    info: dict,
    model_files: Sequence[Path],
    *,
    sample_rate: int = 32000,
    batch_size: int = 256,
    overwrite: bool = False,
    progress: bool = True,
    reuse: bool = False,
) -> Path:
    """Write `output.csv` (upstream's format), `info.json` and copies of `model_files` into `out_dir`,
    atomically; `predict_probabilities` maps waveforms `[B, samples]` to class probabilities `[B, 10]`.
    An existing output.csv is replaced with `overwrite`, kept with `reuse` when `info["output"]` records the
    same model, precision and evaluation set (train.py --evaluate after predict.py), else refused."""
    out_dir = Path(out_dir)
    if (out_dir / "output.csv").exists() and not overwrite:
        if reuse and _same_output(out_dir, info.get("output")):
            log.info("kept %s: it was predicted from the same model (sha256) and evaluation set (pass --overwrite "
                     "to predict again)", out_dir / "output.csv")
            return out_dir / "output.csv"
        refuse_existing_output(out_dir)
    log.info("predicting %d clips of %s (%s)", len(evaluation.files), evaluation.root,
             (info.get("output") or {}).get("precision", "as the model computes"))
    staging = staging_dir(out_dir)  # removes the staging folders of killed predictions first
    try:
        if out_dir.is_dir():  # keep what else is there (e.g. train.py --evaluate's reports)
            shutil.copytree(out_dir, staging, dirs_exist_ok=True)
        with open(staging / "output.csv", "w", encoding="utf-8", newline="") as handle:
            handle.write("\t".join(["filename", "scene_label", *CLASSES]) + "\n")
            with console.progress(len(evaluation.files), "predicting", "clips", enabled=progress) as bar:
                for names, waveforms in batches(evaluation, sample_rate, batch_size):
                    probabilities = np.asarray(predict_probabilities(waveforms), dtype=np.float64)
                    for name, row in zip(names, probabilities):
                        short = name[len("audio/"):] if name.startswith("audio/") else name
                        cells = [short, CLASSES[int(np.argmax(row))], *(f"{p:.6g}" for p in row)]
                        handle.write("\t".join(cells) + "\n")
                    bar.update(len(names))
        atomic_write_json(staging / "info.json", {**_read_info(staging / "info.json"), **info})  # keep an evaluation's keys
        for path in model_files:
            shutil.copy2(path, staging / Path(path).name)
        if out_dir.exists():
            old = out_dir.with_name(f"{temporary_prefix(out_dir)}old.tmp")
            os.replace(out_dir, old)
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %s (%d clips)", out_dir / "output.csv", len(evaluation.files))
    return out_dir / "output.csv"


def refuse_existing_output(out_dir: Path, overwrite: bool = False) -> None:
    """PredictionError when `out_dir` holds an output.csv that `overwrite` does not allow to replace."""
    if (out_dir / "output.csv").exists() and not overwrite:
        raise PredictionError(f"{out_dir / 'output.csv'} exists: pass --overwrite to replace it")


def check_prediction(config: "Config", *, ckpt_id: Optional[str] = None, model_path: Optional[Path] = None,
                     eval_dir: Optional[Path] = None, reuse: bool = False) -> None:
    """The refusals of `predict_evaluation_set` for a run or a .keras file that need no model loaded (unknown run,
    missing model file, no evaluation set, an output.csv to be replaced unless `reuse`): predict.py asks before
    TensorFlow loads."""
    from asc_tf.training.runs import model_run

    if ckpt_id is not None:
        run = model_run(config, ckpt_id)
        dataset_dir, name = config.dataset_dir or run.load_config().dataset_dir, ckpt_id
    else:
        path = Path(str(model_path))
        if not path.is_file():
            raise PredictionError(f"{path}: model file not found")
        dataset_dir, name = config.dataset_dir, path.stem
    find_evaluation_set(eval_dir, dataset_dir)
    if not reuse:
        refuse_existing_output(Path(config.project_dir) / "predictions" / name, config.overwrite)


def _read_info(path: Path) -> dict:
    """An existing info.json (e.g. written by train.py --evaluate), or {} when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _same_output(out_dir: Path, record: Optional[dict]) -> bool:
    """Whether the output.csv in `out_dir` was made from what `record` describes (model sha256, precision, set)."""
    previous = _read_info(out_dir / "info.json").get("output")
    keys = ("model_sha256", "precision", "evaluation_set", "clips")
    return bool(record) and isinstance(previous, dict) and all(previous.get(k) == record.get(k) for k in keys)


def output_record(model_file: Path, precision: str, evaluation: EvaluationSet) -> dict:
    """What made an output.csv (kept in info.json under "output"): the model file, its precision, the set."""
    from asc_tf.io import file_sha256

    return {"model": str(model_file), "model_sha256": file_sha256(model_file), "precision": precision,
            "evaluation_set": str(evaluation.root.resolve()), "clips": len(evaluation.files)}


def run_info(run_dir: Path) -> dict:
    """MACs, Params and dev-test metrics of a run (its info.json, written at the end of training); {} for a run
    that has not finished."""
    return _read_info(run_dir / "info.json")


KERAS_PRECISION = "float32 front end, float16 network (upstream's model.half())"


def _keras_source(config: "Config", ckpt_id: Optional[str], model_path: Optional[Path]
                  ) -> tuple[Callable[[np.ndarray], np.ndarray], dict, list[Path], str, "Config"]:
    """(probabilities function, info, model files, prediction id, config) of a run or a .keras file. Both
    predict as upstream's predict step: the network in float16 (`model.half()`), the front end in float32."""
    import asc_tf
    from asc_tf.complexity import complexity_rows, totals
    from asc_tf.training.evaluation import float16_model
    from asc_tf.training.runs import inference_model_file, load_checkpoint, open_run

    if ckpt_id is not None:
        run = open_run(config, ckpt_id)
        run_config = run.load_config()
        model_file = inference_model_file(run)
        model = load_checkpoint(model_file)
        forward = float16_model(model)
        info = run_info(run.path)
        if "MACs" not in info:  # an unfinished run: its complexity at least
            params, macs = totals(complexity_rows(model))
            info = {"MACs": macs, "Params": params}
        return (lambda w: softmax(np.asarray(forward(w), np.float32))), info, [model_file], ckpt_id, \
            config.replace(dataset_dir=config.dataset_dir or run_config.dataset_dir)
    path = Path(str(model_path))
    try:
        model = asc_tf.load_model(path)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for a foreign or damaged file)
        raise PredictionError(f"{path}: cannot load the model ({type(error).__name__}: {error})") from None
    params, macs = totals(complexity_rows(model))
    forward = float16_model(model)
    return (lambda w: softmax(np.asarray(forward(w), np.float32))), \
        {"MACs": macs, "Params": params}, [path], path.stem, config


def _bundle_source(bundle_dir: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict, list[Path], str]:
    """(probabilities function, info, model files, prediction id) of an export bundle run by the edge runtime
    (numpy front end, the int8 or fp16 network under LiteRT): exactly what a device runs."""
    from asc_tf.edge.bundle import MANIFEST, read_manifest
    from asc_tf.edge.errors import EdgeError

    try:
        read_manifest(bundle_dir)  # a missing or damaged bundle is refused before scipy and LiteRT load
        from asc_tf.edge.classifier import Classifier

        classifier = Classifier(bundle_dir, num_threads=None)
    except EdgeError as error:
        raise PredictionError(str(error)) from None
    manifest = classifier.manifest
    network = manifest["complexity"]["network"]
    elements = sum(sum(by_dtype.values()) for by_dtype in network["parameter_elements"].values())
    info = {"MACs": network["macs"], "Params": elements, "parameter_bytes": network["parameter_bytes"],
            "precision": manifest["precision"], "source": manifest["source"]}
    accuracy = manifest.get("accuracy") or {}
    exported = {k: v for k, v in accuracy.get("metrics", {}).items() if k != "keras_float32"}
    if exported:  # the exported model's dev-test metrics, measured at export
        info["test"] = [{f"test/{k}": v for k, v in next(iter(exported.values())).items()}]
    path = Path(bundle_dir)
    files = [path / manifest["files"]["network"]["path"], path / manifest["files"]["frontend"]["path"],
             path / MANIFEST]
    return classifier.predict_batch, info, files, path.name


def predict_evaluation_set(config: "Config", *, ckpt_id: Optional[str] = None, model_path: Optional[Path] = None,
                           bundle: Optional[Path] = None, eval_dir: Optional[Path] = None,
                           progress: bool = True, reuse: bool = False) -> Path:
    """Predict the evaluation set with one of: a run, a .keras file, an export bundle; returns output.csv.
    `reuse`: keep an existing output.csv made from the same model and set (see `write_predictions`)."""
    if bundle is not None:
        probabilities, info, files, name = _bundle_source(Path(bundle))
        precision = f"{info['precision']} network as exported, float32 front end (LiteRT)"
        if config.dataset_dir is None:  # the development set the bundle's run was trained on, if known
            from asc_tf.export.locate import run_config_near

            run_config = run_config_near(Path(info["source"]["checkpoint"]))
            config = config.replace(dataset_dir=run_config.dataset_dir if run_config else None)
    else:
        check_prediction(config, ckpt_id=ckpt_id, model_path=model_path, eval_dir=eval_dir, reuse=reuse)
        probabilities, info, files, name, config = _keras_source(config, ckpt_id, model_path)
        precision = KERAS_PRECISION
    evaluation = find_evaluation_set(eval_dir, config.dataset_dir)
    info = {**info, "output": output_record(files[0], precision, evaluation)}
    out_dir = Path(config.project_dir) / "predictions" / name
    return write_predictions(out_dir, evaluation, probabilities, info, files, batch_size=config.batch_size,
                             overwrite=config.overwrite, progress=progress, reuse=reuse)
