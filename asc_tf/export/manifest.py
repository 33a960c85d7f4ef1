"""An export bundle's `manifest.json`, read and checked against the files it describes. One implementation
for the edge runtime (`asc_tf.edge.bundle.read_manifest`) and the export (`asc_tf.export.bundle.load_bundle`);
standard library and numpy only, so `import asc_tf.edge` stays free of TensorFlow.

A manifest that disagrees with its files (an edited `sample_rate`, a cut `classes` list, another network's
quantization) would make a device print wrong classes with exit code 0; every mismatch is one ManifestError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np

from asc_tf.export.errors import ExportError
from asc_tf.io import file_sha256

FORMAT = "asc-tf-export/1"
MANIFEST = "manifest.json"
FRONTEND_TOLERANCE = 1e-2  # log-mel units; the numpy and TFLite front ends agree within 3e-6 (tests)
_REQUIRED = ("precision", "classes", "sample_rate", "clip_samples", "files", "inputs", "outputs", "frontend")
_REMEDY = "the manifest was edited or belongs to another bundle: export again (or restore manifest.json)"


class ManifestError(ExportError):
    """A manifest that is unreadable or disagrees with the bundle's files; the message names both."""


class ModelLike(Protocol):
    """What the checks read of a loaded `.tflite` model (`asc_tf.export.runtime.TFLiteModel`)."""

    input: dict[str, Any]
    output: dict[str, Any]


def read_manifest(bundle_dir: str | Path, roles: tuple[str, ...] = ("network",)) -> dict[str, Any]:
    """The bundle's manifest, after checking its format and fields and each file of `roles` (size, sha256)."""
    path = Path(bundle_dir)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ManifestError(f"{path}: not an export bundle ({MANIFEST}: {reason})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ManifestError(f"{path / MANIFEST}: format {found!r}, expected {FORMAT!r}")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise ManifestError(f"{path / MANIFEST}: field(s) {missing} missing: {_REMEDY}")
    for role in roles:
        try:
            entry = manifest["files"][role]
            target = path / entry["path"]
            size, digest = int(entry["bytes"]), str(entry["sha256"])
        except (KeyError, TypeError, ValueError):
            raise ManifestError(f"{path / MANIFEST}: files.{role} missing or malformed: {_REMEDY}") from None
        if not target.is_file() or target.stat().st_size != size or file_sha256(target) != digest:
            raise ManifestError(f"{target}: missing or changed since export (size/sha256 differ from {MANIFEST}): "
                                f"export again")
    return manifest


def _shape(detail: dict[str, Any]) -> list[int]:
    return [int(d) for d in detail["shape"]]


def _quantization(detail: dict[str, Any]) -> Optional[tuple[float, int]]:
    """(scale, zero point) of an int8 interpreter tensor, else None."""
    if np.dtype(detail["dtype"]) != np.int8:
        return None
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def _check_io(where: str, declared: dict[str, Any], actual: dict[str, Any], model_file: str) -> None:
    """A manifest `inputs.X` / `outputs.X` entry against the interpreter's tensor: shape, dtype, quantization."""
    if [int(d) for d in declared["shape"]] != _shape(actual):
        raise ManifestError(f"{where}: shape {list(declared['shape'])}, {model_file} has {_shape(actual)}: {_REMEDY}")
    if str(declared.get("dtype", np.dtype(actual["dtype"]).name)) != np.dtype(actual["dtype"]).name:
        raise ManifestError(f"{where}: dtype {declared.get('dtype')}, {model_file} has "
                            f"{np.dtype(actual['dtype']).name}: {_REMEDY}")
    own = _quantization(actual)
    stated = (float(declared["scale"]), int(declared["zero_point"])) if "scale" in declared else None
    if (own is None) != (stated is None) or (own is not None and stated is not None and (
            own[1] != stated[1] or not np.isclose(own[0], stated[0], rtol=1e-6, atol=0.0))):
        raise ManifestError(f"{where}: quantization (scale, zero point) {stated}, {model_file}'s own is {own}: "
                            f"{_REMEDY}")


def check_models(manifest: dict[str, Any], bundle_dir: str | Path, network: ModelLike,
                 frontend: Optional[ModelLike | Callable[[np.ndarray], np.ndarray]] = None,
                 numpy_frontend: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 end_to_end: Optional[ModelLike] = None) -> None:
    """Check the manifest's fields against the loaded models: class count against the network's output,
    sample rate and clip length against the front end's input (and, when both front ends are given, the
    front end the manifest describes against the front-end file on a test signal), quantization against
    the network's own. Raises ManifestError (one line) at the first mismatch."""
    where = Path(bundle_dir) / MANIFEST
    try:
        _check(manifest, where, network, frontend, numpy_frontend, end_to_end)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        if isinstance(error, ManifestError):
            raise
        raise ManifestError(f"{where}: a field is missing or malformed ({type(error).__name__}: {error}): "
                            f"{_REMEDY}") from None


def _check(manifest: dict[str, Any], where: Path, network: ModelLike, frontend: Any, numpy_frontend: Any,
           end_to_end: Optional[ModelLike]) -> None:
    files = manifest["files"]
    network_file = files["network"]["path"]
    classes = manifest["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ManifestError(f"{where}: classes must be a list of names: {_REMEDY}")
    n_outputs = _shape(network.output)[-1]
    if len(classes) != n_outputs:
        raise ManifestError(f"{where}: {len(classes)} classes listed, {network_file} outputs {n_outputs}: {_REMEDY}")
    _check_io(f"{where} inputs.network", manifest["inputs"]["network"], network.input, network_file)
    _check_io(f"{where} outputs.network", manifest["outputs"]["network"], network.output, network_file)
    section = manifest["frontend"]
    sample_rate, clip_samples = int(manifest["sample_rate"]), int(manifest["clip_samples"])
    if sample_rate != int(section["sample_rate"]):
        raise ManifestError(f"{where}: sample_rate {sample_rate} Hz, the front end is made for "
                            f"{int(section['sample_rate'])} Hz (frontend.sample_rate): {_REMEDY}")
    frames = 1 + clip_samples // int(section["hop_length"])
    expected = [1, int(section["n_mels"]), frames, 1]
    if _shape(network.input) != expected:
        raise ManifestError(f"{where}: clip_samples {clip_samples} and the front end give log-mel {expected}, "
                            f"{network_file} takes {_shape(network.input)}: {_REMEDY}")
    if frontend is not None:
        frontend_file = files["frontend"]["path"]
        model_samples = _shape(frontend.input)[-1]
        if clip_samples != model_samples:
            raise ManifestError(f"{where}: clip_samples {clip_samples}, {frontend_file} takes {model_samples} "
                                f"samples ({model_samples / sample_rate:g} s at {sample_rate} Hz): {_REMEDY}")
        if numpy_frontend is not None:
            _check_frontend_settings(where, frontend, numpy_frontend, clip_samples, frontend_file)
    if end_to_end is not None:
        e2e_file = files["end_to_end"]["path"]
        if _shape(end_to_end.output)[-1] != len(classes) or _shape(end_to_end.input)[-1] != clip_samples:
            raise ManifestError(f"{where}: {len(classes)} classes and {clip_samples} samples, {e2e_file} is "
                                f"{_shape(end_to_end.input)} -> {_shape(end_to_end.output)}: {_REMEDY}")


def _check_frontend_settings(where: Path, frontend: Any, numpy_frontend: Callable[[np.ndarray], np.ndarray],
                             clip_samples: int, frontend_file: str) -> None:
    """The front end the manifest's settings build (numpy) against the front-end file, on one test signal:
    a different sample rate, FFT size, hop or mel range gives a different log-mel."""
    t = np.arange(clip_samples, dtype=np.float64)
    signal = (0.1 * np.sin(2 * np.pi * t * 0.0125) + 0.05 * np.random.default_rng(0).standard_normal(clip_samples))
    signal = signal.astype(np.float32)
    from_file = np.asarray(frontend(signal.reshape(1, -1)), np.float32).reshape(-1)
    from_manifest = np.asarray(numpy_frontend(signal), np.float32).reshape(-1)
    if from_file.shape != from_manifest.shape:
        raise ManifestError(f"{where}: the front-end settings give {from_manifest.size} log-mel values, "
                            f"{frontend_file} gives {from_file.size}: {_REMEDY}")
    difference = float(np.max(np.abs(from_file - from_manifest)))
    if not difference <= FRONTEND_TOLERANCE:
        raise ManifestError(f"{where}: the front-end settings (sample rate, n_fft, hop, mels) do not compute what "
                            f"{frontend_file} computes (log-mel differs by {difference:.3g}): {_REMEDY}")
