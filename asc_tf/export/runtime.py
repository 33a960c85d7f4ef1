"""Running exported models with LiteRT (`ai-edge-litert`), the runtime a Raspberry Pi installs (on 32-bit Arm,
`tflite-runtime`'s interpreter instead: `asc_tf.export.interpreter`).

`TFLiteModel` hides quantization: it takes and returns float arrays and (de)quantizes at an int8 boundary
exactly as a firmware would; `ExportedClassifier` chains the float front end and the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from asc_tf.export.interpreter import Interpreter, OpResolverType
from asc_tf.export.quantization import Quantization, round_half_away  # noqa: F401  (re-exported)

from asc_tf.console import quiet_stderr


def _quantization(detail: dict[str, Any]) -> Optional[Quantization]:
    if detail["dtype"] != np.int8:
        return None
    scale, zero_point = detail["quantization"]
    return Quantization(float(scale), int(zero_point))


def tensor_io(detail: dict[str, Any]) -> dict[str, Any]:
    """Shape, dtype and int8 scale/zero point of an interpreter input or output (for the manifest)."""
    quant = _quantization(detail)
    out: dict[str, Any] = {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name}
    if quant is not None:
        out.update(scale=quant.scale, zero_point=quant.zero_point)
    return out


class TFLiteModel:
    """One single-input, single-output `.tflite` model under LiteRT; float in, float out."""

    def __init__(self, model: bytes | str | Path, num_threads: Optional[int] = None,
                 reference_kernels: bool = False) -> None:
        """`reference_kernels`: LiteRT's reference op implementations (TFLite Micro's arithmetic) instead of
        the optimized ones (XNNPACK), whose int8 requantization rounds differently."""
        content = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
        with quiet_stderr():  # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" to fd 2
            self.interpreter = Interpreter(model_content=bytes(content), num_threads=num_threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_quantization = _quantization(self.input)
        self.output_quantization = _quantization(self.output)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """Invoke on an already (quantized) input of the stored dtype; returns the stored output."""
        self.interpreter.set_tensor(self.input["index"], np.asarray(x, dtype=self.input["dtype"]).reshape(
            self.input_shape))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return self.input_quantization.quantize(x) if self.input_quantization else x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Float input -> float output (quantized at the int8 boundary when the model is int8)."""
        y = self.run_raw(self.quantize_input(x))
        return self.output_quantization.dequantize(y) if self.output_quantization else y.astype(np.float32)


class ExportedClassifier:
    """The shipped pipeline: float front end (waveform -> log-mel), then the network (log-mel -> logits)."""

    def __init__(self, frontend: bytes | str | Path, network: bytes | str | Path,
                 num_threads: Optional[int] = None) -> None:
        self.frontend = TFLiteModel(frontend, num_threads)
        self.network = TFLiteModel(network, num_threads)

    def log_mel(self, waveform: np.ndarray) -> np.ndarray:
        return self.frontend(np.asarray(waveform, dtype=np.float32).reshape(self.frontend.input_shape))

    def logits(self, waveform: np.ndarray) -> np.ndarray:
        """Logits `[1, n_classes]` of one clip `[samples]` or `[1, samples]`."""
        return self.network(self.log_mel(waveform))

    def logits_batch(self, waveforms: np.ndarray) -> np.ndarray:
        """Logits `[B, n_classes]` of a batch, one clip at a time (the models have batch 1)."""
        return np.concatenate([self.logits(w) for w in np.asarray(waveforms)], axis=0)
