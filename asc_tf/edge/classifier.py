"""`Classifier`: an export bundle run with numpy and LiteRT only (numpy front end, int8 or fp16 network)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from asc_tf.edge.bundle import MANIFEST, check_models, read_manifest
from asc_tf.edge.errors import EdgeError
from asc_tf.edge.frontend import LogMel
from asc_tf.edge.mel import SettingsError
from asc_tf.export.quantization import Quantization
from asc_tf.export.runtime import TFLiteModel


@dataclass(frozen=True)
class Latency:
    """Milliseconds spent on one clip: numpy front end, network under LiteRT."""

    frontend_ms: float
    network_ms: float

    @property
    def total_ms(self) -> float:
        return self.frontend_ms + self.network_ms


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of logits `[..., n_classes]` (computed in float64)."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _quantization(io: dict) -> Optional[Quantization]:
    return Quantization(float(io["scale"]), int(io["zero_point"])) if "scale" in io else None


def _load_model(path: Path, num_threads: Optional[int]) -> TFLiteModel:
    """A bundle's .tflite file under LiteRT; a file LiteRT refuses (damaged, or replaced together with its sha256
    in the manifest) is an EdgeError naming it."""
    try:
        return TFLiteModel(path, num_threads)
    except (ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise EdgeError(f"{path}: not a model LiteRT can load ({reason}): export again") from None


class Classifier:
    """One clip `[clip_samples]` float32 at `sample_rate` in, class probabilities `[n_classes]` out.

    The input quantization is the manifest's (what a firmware uses), the network runs under LiteRT.
    """

    def __init__(self, bundle_dir: str | Path, num_threads: Optional[int] = 1) -> None:
        self.path = Path(bundle_dir)
        self.manifest = read_manifest(self.path, roles=("network", "frontend"))
        manifest = self.manifest
        try:  # only a bad `frontend` section is the manifest's fault; any other failure is raised as it is
            self.frontend = LogMel.from_manifest(manifest["frontend"])
        except SettingsError as error:
            raise EdgeError(f"{self.path / MANIFEST}: frontend: {error}: the manifest was edited or belongs to "
                            f"another bundle: export again (or restore {MANIFEST})") from None
        self.network = _load_model(self.path / manifest["files"]["network"]["path"], num_threads)
        # the manifest's classes, rate, clip length and quantization against the files (the front-end file
        # is run once on a test signal and released)
        check_models(manifest, self.path, self.network,
                     _load_model(self.path / manifest["files"]["frontend"]["path"], 1), self.frontend)
        self.classes: list[str] = list(manifest["classes"])
        self.sample_rate = int(manifest["sample_rate"])
        self.clip_samples = int(manifest["clip_samples"])
        self.precision = manifest["precision"]
        self.input_quantization = _quantization(manifest["inputs"]["network"])
        self.output_quantization = _quantization(manifest["outputs"]["network"])
        self.input_shape = tuple(int(d) for d in manifest["inputs"]["network"]["shape"])

    def _check(self, waveform: np.ndarray) -> np.ndarray:
        x = np.asarray(waveform, dtype=np.float32)
        if x.shape != (self.clip_samples,):
            raise ValueError(f"expected one clip of {self.clip_samples} samples at {self.sample_rate} Hz, "
                             f"got shape {x.shape}")
        return x

    def log_mel(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel `[n_mels, frames]` of one clip (the network's input before quantization)."""
        return self.frontend(self._check(waveform))

    def network_logits(self, log_mel: np.ndarray) -> np.ndarray:
        """Logits `[n_classes]` of a log-mel `[n_mels, frames]`: quantize, invoke, dequantize."""
        x = np.asarray(log_mel, np.float32).reshape(self.input_shape)
        q = self.input_quantization.quantize(x) if self.input_quantization else x
        y = self.network.run_raw(q)
        y = self.output_quantization.dequantize(y) if self.output_quantization else y.astype(np.float32)
        return y.reshape(-1)

    def logits(self, waveform: np.ndarray) -> np.ndarray:
        return self.network_logits(self.log_mel(waveform))

    def predict(self, waveform: np.ndarray) -> np.ndarray:
        """Class probabilities `[n_classes]` of one clip `[clip_samples]` float32 at `sample_rate`."""
        return softmax(self.logits(waveform))

    def predict_timed(self, waveform: np.ndarray) -> tuple[np.ndarray, Latency]:
        """`predict` with the time spent in the front end and in the network."""
        start = time.perf_counter()
        mel = self.log_mel(waveform)
        middle = time.perf_counter()
        logits = self.network_logits(mel)
        end = time.perf_counter()
        return softmax(logits), Latency(1000.0 * (middle - start), 1000.0 * (end - middle))

    def predict_batch(self, waveforms: np.ndarray) -> np.ndarray:
        """Probabilities `[B, n_classes]` of clips `[B, clip_samples]`, one at a time (the network has batch 1)."""
        return np.stack([self.predict(w) for w in np.asarray(waveforms)]) if len(waveforms) else \
            np.zeros((0, len(self.classes)))
