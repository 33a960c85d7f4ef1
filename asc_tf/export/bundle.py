"""The export bundle: convert a model, audit the network against the challenge limits, measure what
ships (LiteRT accuracy, TFLite Micro), and write the files with a `manifest.json`; `load_bundle` reads it back.

    network_int8.tflite | network_fp16.tflite   log-mel [1, n_mels, frames, 1] -> logits [1, n_classes] (int8: with
                                                TFLite Micro's offline memory plan in its metadata)
    frontend_float32.tflite                     waveform [1, samples] -> log-mel
    end_to_end_float32.tflite                   waveform [1, samples] -> class probabilities (TFLite metadata)
    end_to_end_fp16.tflite                      the same with float16 weights (TFLite metadata)
    end_to_end_int8.tflite (int8)               the same with the network in int8 (TFLite metadata)
    complexity.md, complexity.json              the audit of the network file
    firmware/ (int8)                            C arrays of the network, window and mel matrix; README.md
    npu/ (int8, --vela)                         the network compiled by Vela for Ethos-U55-128 and Ethos-U65-256
    manifest.json
"""

from __future__ import annotations

import hashlib
import logging
import platform
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import numpy as np

from asc_tf.config import Config
from asc_tf.data.convert import convert_dataset
from asc_tf.io import file_sha256
from asc_tf.data.meta import CLASSES
from asc_tf.export import tflite, tflm
from asc_tf.export.accuracy import AccuracyReport, evaluate_exported
from asc_tf.export.audit import Audit, audit_tflite, format_audit
from asc_tf.export.errors import ExportError, OverLimitError
from asc_tf.export.firmware import export_arena, write_firmware
from asc_tf.export.locate import bundle_dir
from asc_tf.export.memory_plan import MemoryPlanError, with_offline_plan
from asc_tf.export.manifest import FORMAT, MANIFEST, ManifestError, check_models, read_manifest
from asc_tf.export.metadata import DEFAULT_AUTHOR, DEFAULT_LICENCE, WRITER, MetadataError, ModelCard, add_metadata
from asc_tf.export.runtime import ExportedClassifier, TFLiteModel, tensor_io
from asc_tf.export.source import Source, load_source, representative_log_mels, representative_waveforms
from asc_tf.io import atomic_write_bytes, atomic_write_json, atomic_write_text, staging_dir, temporary_prefix
from asc_tf.model.frontend import LOG_OFFSET

log = logging.getLogger(__name__)

__all__ = ["ExportOptions", "ExportResult", "Bundle", "export_bundle", "load_bundle", "load_source"]

PRECISIONS = ("int8", "fp16")
PACKAGES = ("tensorflow", "keras", "numpy", "ai-edge-litert", "tflite-micro", "flatbuffers")


@dataclass
class ExportOptions:
    """What `export_tflite.py` makes; flags of the same names."""

    precision: str = "int8"
    out: Optional[str] = None  # default: <project_dir>/exports/<run id or model name>_<precision>
    overwrite: bool = False
    keep_over_limit: bool = False
    representative_size: int = 200  # training-split clips calibrating the int8 network
    tflm_clips: int = 4
    skip_accuracy: bool = False
    firmware_figures: bool = False  # int8: build the firmware for Cortex-M4 and measure it under QEMU (minutes)
    vela: bool = False  # int8: compile the network with Vela for Ethos-U55-128 / U65-256 (npu/, its estimates)
    metadata: bool = True  # TFLite Model Metadata on the end-to-end models (asc_tf.export.metadata)
    require_metadata: bool = False  # a metadata writer that fails is an error (exit 2, nothing written), not a warning
    author: str = DEFAULT_AUTHOR  # the metadata's author and licence fields (--model_author, --model_licence)
    licence: str = DEFAULT_LICENCE


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    audit: Audit
    files: dict[str, bytes] = field(default_factory=dict)
    accuracy: Optional[AccuracyReport] = None  # per-clip logits of both models, when measured


def _shards(config: Config, why: str) -> Path:
    if not config.dataset_dir:
        raise ExportError(f"{why} needs the dataset: pass --dataset_dir (or set $ASC_TF_DATASET_DIR)")
    return convert_dataset(config, progress=False)


def package_versions() -> dict[str, Optional[str]]:
    import asc_tf

    versions: dict[str, Optional[str]] = {"python": platform.python_version(), "asc-tf": asc_tf.__version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _file_entry(name: str, data: bytes) -> dict[str, Any]:
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _summary(audit: Audit) -> dict[str, Any]:
    figures = audit.to_dict()
    figures.pop("rows")
    return figures


def _tflm_section(network: bytes, examples: list[np.ndarray], litert: TFLiteModel) -> dict[str, Any]:
    if not tflm.available():
        log.warning("TFLite Micro skipped: %s", tflm.unavailable_reason())
        return {"skipped": tflm.unavailable_reason()}
    inputs = [litert.quantize_input(x) for x in examples]
    # TFLM runs the reference kernels: compare with LiteRT's reference kernels (the same arithmetic), and
    # report how far LiteRT's optimized kernels (what a Raspberry Pi runs) are from both.
    reference = TFLiteModel(network, reference_kernels=True)
    section = tflm.compare_with_litert(network, inputs, [reference.run_raw(x) for x in inputs]).to_dict()
    optimized = [litert.run_raw(x).astype(np.int32) for x in inputs]
    section["litert_optimized_max_abs_diff_steps"] = int(max(
        np.max(np.abs(o - reference.run_raw(x).astype(np.int32))) for o, x in zip(optimized, inputs)))
    return section


def _with_memory_plan(network: bytes) -> tuple[bytes, dict[str, Any]]:
    """The int8 network with TFLite Micro's offline memory plan in its metadata (unchanged if it cannot be planned)."""
    try:
        planned, plan = with_offline_plan(network)
    except MemoryPlanError as error:
        log.warning("offline memory plan skipped: %s", error)
        return network, {"skipped": str(error)}
    log.info("offline memory plan: %d bytes (largest live set %d)", plan.planned_bytes, plan.largest_live_set)
    return planned, plan.to_dict()


def _npu(network: bytes, options: ExportOptions) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Vela's compiled models and estimates when asked for (`--vela`), else why not."""
    if options.precision != "int8":
        return {"skipped": "fp16 network (the Ethos-U NPUs run int8)"}, {}
    if not options.vela:
        return {"skipped": "not asked: export_tflite.py --vela"}, {}
    from asc_tf.export.vela import VelaError, npu_section

    try:
        return npu_section(network)
    except VelaError as error:
        log.warning("Vela skipped: %s", error)
        return {"skipped": str(error)}, {}


def _out_dir(source: Source, options: ExportOptions) -> Path:
    qat = options.precision == "int8" and source.qat_network is not None  # beside a PTQ bundle, not over it
    return bundle_dir(source.name, source.config.project_dir, options.precision, qat, options.out, options.overwrite)


def export_bundle(source: Source, options: ExportOptions) -> ExportResult:
    """Convert, audit (raising OverLimitError unless `keep_over_limit`), measure, and write the bundle."""
    if options.precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, got {options.precision!r}")
    out = _out_dir(source, options)
    config, model = source.config, source.model
    network = tflite.network_of(model)
    samples = int(model.input.shape[-1])
    shards = None
    representative: list[np.ndarray] = []
    quantization: dict[str, Any] = {"method": None}
    if options.precision == "int8" and source.qat_network is not None:
        network_bytes = source.qat_network.read_bytes()  # QAT's own scales: not recalibrated
        quantization = {"method": "qat", "artefact": str(source.qat_network),
                        "note": "scales and zero points from quantization-aware training, not recalibrated"}
        shards = _shards(config, "the TFLite Micro check")
        tflm_examples = representative_log_mels(model, shards, config, options.tflm_clips)
    elif options.precision == "int8":
        shards = _shards(config, "int8 calibration")
        representative = representative_log_mels(model, shards, config, options.representative_size)
        network_bytes = tflite.convert_network_int8(network, representative)
        quantization = {"method": "ptq", "note": "post-training calibration on the representative set"}
        tflm_examples = representative[:options.tflm_clips]
    else:
        network_bytes = tflite.convert_network_fp16(network)
    plan_section: dict[str, Any] = {"skipped": "fp16 network (the offline plan is for TFLite Micro's int8 network)"}
    if options.precision == "int8":
        network_bytes, plan_section = _with_memory_plan(network_bytes)
    network_name = f"network_{options.precision}.tflite"
    audit = audit_tflite(network_bytes, network_name)
    log.info("audit: %s", audit.verdict())
    if not audit.passed and not options.keep_over_limit:
        raise OverLimitError(f"{network_name} {audit.verdict()}; pass --keep_over_limit to write it anyway")
    frontend_bytes = tflite.convert_frontend(tflite.frontend_of(model), samples)
    standalone = {"end_to_end_float32.tflite": tflite.convert_end_to_end(model, samples),
                  "end_to_end_fp16.tflite": tflite.convert_end_to_end(model, samples, fp16=True)}
    if options.precision == "int8":  # float front end, int8 network, calibrated on the same training clips
        standalone["end_to_end_int8.tflite"] = tflite.convert_end_to_end_int8(
            model, samples, representative_waveforms(shards, config, options.representative_size))
    standalone, metadata_section = _with_metadata(standalone, source, options)
    files = {network_name: network_bytes, "frontend_float32.tflite": frontend_bytes, **standalone}
    npu_section, npu_files = _npu(network_bytes, options)
    classifier = ExportedClassifier(frontend_bytes, network_bytes)
    accuracy: dict[str, Any] = {"skipped": "--skip_accuracy"}
    report = None
    if not options.skip_accuracy:
        report = evaluate_exported(model, classifier, shards or _shards(config, "the accuracy check"), config)
        accuracy = report.to_dict(f"litert_{options.precision}")
    tflm_section: dict[str, Any] = {"skipped": "fp16 network (TFLite Micro runs the int8 network)"}
    if options.precision == "int8":
        tflm_section = _tflm_section(network_bytes, tflm_examples, classifier.network)
    net_in, net_out = tensor_io(classifier.network.input), tensor_io(classifier.network.output)
    manifest = _manifest(source, options, files, audit, accuracy, tflm_section, classifier, len(representative))
    manifest["quantization"] = quantization
    manifest["npu"] = npu_section
    if npu_files:
        files.update(npu_files)
        manifest["files"]["npu"] = [_file_entry(name, data) for name, data in npu_files.items()]
    manifest["metadata"] = metadata_section
    arena = export_arena(tflm_section.get("arena_bytes"), plan_section.get("planned_bytes"))
    manifest["memory_plan"] = {**plan_section, "firmware_arena": {"bytes": arena[0], "how": arena[1]}} \
        if options.precision == "int8" else plan_section
    _write(out, options, files, audit, manifest, config, net_in, net_out, arena)
    # the known clip's output as the edge runtime computes it from the written bundle, for `--selftest` on a device
    from asc_tf.edge.classifier import Classifier
    from asc_tf.edge.selftest import record

    manifest["selftest"] = record(Classifier(out))
    atomic_write_json(out / MANIFEST, manifest)
    if options.precision == "int8" and options.firmware_figures:
        from asc_tf.export.firmware_build import measure_export

        manifest["firmware"] = measure_export(out, network_bytes, shards or _shards(config, "the firmware figures"),
                                              config)
    log.info("bundle written to %s", out)
    return ExportResult(out, manifest, audit, files, report)


def _model_card(source: Source, options: ExportOptions, weights: str) -> ModelCard:
    import asc_tf

    config = source.config
    seconds = int(source.model.input.shape[-1]) / config.sample_rate
    return ModelCard(
        name=f"asc-tf CP-Mobile acoustic scene classifier ({weights})",
        version=f"{source.name}, asc-tf {asc_tf.__version__}",
        description=(f"Acoustic scene classification: a TensorFlow port of the DCASE2024 Task 1 baseline (CP-Mobile), "
                     f"trained on {config.subset} % of TAU Urban Acoustic Scenes 2022 Mobile's development split "
                     f"(run {source.name}). {seconds:g} s of mono audio at {config.sample_rate} Hz in, the "
                     f"probabilities of {len(CLASSES)} scenes out; the log-mel front end is inside the model."),
        author=options.author, licence=options.licence, sample_rate=config.sample_rate, channels=1,
        classes=tuple(CLASSES),
        input_description=(f"{int(source.model.input.shape[-1])} samples ({seconds:g} s) of mono audio at "
                           f"{config.sample_rate} Hz, float32, full scale 1.0"),
        output_description="probability of each scene (softmax; they sum to 1), in the label file's order")


def _with_metadata(models: dict[str, bytes], source: Source, options: ExportOptions
                   ) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The standalone models with TFLite Model Metadata, and the manifest's `metadata` section."""
    if not options.metadata:
        return models, {"skipped": "--no_metadata"}
    weights = {"end_to_end_float32.tflite": "float32", "end_to_end_fp16.tflite": "float16 weights",
               "end_to_end_int8.tflite": "float32 front end, int8 network"}
    try:
        out = {name: add_metadata({name: data}, _model_card(source, options, weights[name]))[name]
               for name, data in models.items()}
    except MetadataError as error:
        if options.require_metadata:
            raise MetadataError(f"TFLite metadata not written ({error}); --require_metadata: nothing exported") from None
        log.warning("TFLite metadata not written: %s (MediaPipe refuses such models; --require_metadata makes this an "
                    "error)", error)
        return models, {"skipped": str(error)}
    card = _model_card(source, options, "")
    return out, {"writer": WRITER, "models": sorted(out), "version": card.version, "author": card.author,
                 "licence": card.licence, "sample_rate": card.sample_rate, "channels": card.channels,
                 "labels": "labels.txt (the classes, in order)", "output": "probabilities"}


def _manifest(source: Source, options: ExportOptions, files: dict[str, bytes], audit: Audit,
              accuracy: dict[str, Any], tflm_section: dict[str, Any], classifier: ExportedClassifier,
              representative: int) -> dict[str, Any]:
    config = source.config
    network_name = f"network_{options.precision}.tflite"
    front, e2e = audit_tflite(files["frontend_float32.tflite"]), audit_tflite(files["end_to_end_float32.tflite"])
    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "precision": options.precision,
        "classes": list(CLASSES),
        "sample_rate": config.sample_rate,
        "clip_samples": int(source.model.input.shape[-1]),
        "files": {"network": _file_entry(network_name, files[network_name]),
                  "frontend": _file_entry("frontend_float32.tflite", files["frontend_float32.tflite"]),
                  "end_to_end": _file_entry("end_to_end_float32.tflite", files["end_to_end_float32.tflite"]),
                  "end_to_end_fp16": _file_entry("end_to_end_fp16.tflite", files["end_to_end_fp16.tflite"]),
                  **({"end_to_end_int8": _file_entry("end_to_end_int8.tflite", files["end_to_end_int8.tflite"])}
                     if "end_to_end_int8.tflite" in files else {})},
        "inputs": {"network": tensor_io(classifier.network.input), "frontend": tensor_io(classifier.frontend.input),
                   "end_to_end": {"shape": [1, int(source.model.input.shape[-1])], "dtype": "float32"}},
        "outputs": {"network": {**tensor_io(classifier.network.output), "meaning": "logits"},
                    "frontend": {**tensor_io(classifier.frontend.output), "meaning": "log-mel"},
                    "end_to_end": {"shape": [1, len(CLASSES)], "dtype": "float32", "meaning": "probabilities"}},
        "frontend": {"sample_rate": config.sample_rate, "n_fft": config.n_fft, "window": "periodic hann",
                     "window_length": config.window_length, "hop_length": config.hop_length,
                     "n_mels": config.n_mels, "f_min": config.f_min,
                     "f_max": config.f_max or config.sample_rate // 2, "mel_scale": "htk", "padding": "reflect",
                     "centered": True, "log_offset": LOG_OFFSET, "power": 2.0},
        "source": {"checkpoint": str(source.checkpoint), "sha256": file_sha256(source.checkpoint),
                   "run_id": source.run_id, "subset": config.subset},
        "representative_set": ({"split": f"split{config.subset}", "clips": representative,
                                "seed": 0 if config.seed is None else config.seed} if representative else None),
        "packages": package_versions(),
        "complexity": {"network": _summary(audit),
                       "frontend_float32": {"parameter_bytes": front.parameter_bytes, "macs": front.macs,
                                            "note": "not counted by the challenge: runs before the network"},
                       "end_to_end_float32": {"parameter_bytes": e2e.parameter_bytes, "macs": e2e.macs}},
        "accuracy": accuracy,
        "tflm": tflm_section,
        "firmware": ({"measured": None, "how": "export_tflite.py --int8 --firmware_figures, or python "
                      "bench/firmware.py --bundle DIR --audio CLIPS --update_manifest"}
                     if options.precision == "int8" else None),
    }


def _write(out: Path, options: ExportOptions, files: dict[str, bytes], audit: Audit, manifest: dict[str, Any],
           config: Config, net_in: dict, net_out: dict, arena: tuple[int, str]) -> None:
    """Write everything into a staging folder beside `out`, then swap it in: no half-written bundle is left."""
    stage = staging_dir(out)  # also removes the staging folders of killed exports
    try:
        for name, data in files.items():
            atomic_write_bytes(stage / name, data)
        atomic_write_text(stage / "complexity.md", format_audit(audit))
        atomic_write_json(stage / "complexity.json", audit.to_dict())
        if options.precision == "int8":
            written = write_firmware(stage / "firmware", files[manifest["files"]["network"]["path"]], config,
                                     (net_in["scale"], net_in["zero_point"]),
                                     (net_out["scale"], net_out["zero_point"]), list(CLASSES), arena)
            manifest["files"]["firmware"] = [f"firmware/{name}" for name in written]
        manifest["files"]["complexity"] = ["complexity.md", "complexity.json"]
        atomic_write_json(stage / MANIFEST, manifest)
        stage.chmod(0o755)  # mkdtemp/mkstemp make private files; a bundle is meant to be shared
        for item in stage.rglob("*"):
            item.chmod(0o755 if item.is_dir() else 0o644)
        old = None
        if out.exists():
            old = out.with_name(f"{temporary_prefix(out)}old.tmp")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        stage.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@dataclass
class Bundle:
    """A bundle read back from disk, its files checked against the manifest's sizes and hashes."""

    path: Path
    manifest: dict[str, Any]

    def file(self, role: str) -> Path:
        return self.path / self.manifest["files"][role]["path"]

    def classifier(self, num_threads: Optional[int] = None) -> ExportedClassifier:
        """Front end + network under LiteRT: what ships."""
        return ExportedClassifier(self.file("frontend"), self.file("network"), num_threads)

    def end_to_end(self, num_threads: Optional[int] = None) -> TFLiteModel:
        return TFLiteModel(self.file("end_to_end"), num_threads)


def load_bundle(path: str | Path) -> Bundle:
    """Read `manifest.json`, check every model file it lists (size and sha256) and its fields against the
    models (`asc_tf.export.manifest`, the checks the edge runtime makes too)."""
    from asc_tf.edge.frontend import LogMel
    from asc_tf.edge.mel import SettingsError

    path = Path(path)
    manifest = read_manifest(path, roles=("network", "frontend", "end_to_end"))
    files = manifest["files"]
    try:  # only a bad `frontend` section is the manifest's fault (see LogMel.from_manifest)
        numpy_frontend = LogMel.from_manifest(manifest["frontend"])
    except SettingsError as error:
        raise ManifestError(f"{path / MANIFEST}: frontend: {error}: export again (or restore {MANIFEST})") from None
    frontend = TFLiteModel(path / files["frontend"]["path"], 1)
    check_models(manifest, path, TFLiteModel(path / files["network"]["path"], 1), frontend, numpy_frontend,
                 TFLiteModel(path / files["end_to_end"]["path"], 1))
    return Bundle(path, manifest)
