"""TFLite converters for what ships: the network (int8 or fp16), the float front end, an end-to-end float model.

All models have a fixed batch of 1, so every shape stored in the flatbuffer is real and the audit can count
MACs from it. The converter is driven directly (`from_keras_model`, builtin ops only, never Flex ops):
Keras' own LiteRT export enables TF fallback ops.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

from asc_tf.console import quiet_native
from asc_tf.model.cp_mobile import NETWORK_NAME

log = logging.getLogger(__name__)

FRONTEND_NAME = "frontend"


def _batch_one(layer: keras.layers.Layer | keras.Model, input_shape: tuple[int, ...], name: str,
               head: Callable[[keras.KerasTensor], keras.KerasTensor] | None = None) -> keras.Model:
    """`layer` wrapped in a functional model whose input has batch size 1 (inference mode)."""
    x = keras.Input(input_shape, batch_size=1, name=name, dtype="float32")
    y = layer(x, training=False)
    if head is not None:
        y = head(y)
    return keras.Model(x, y)


def run_converter(converter: tf.lite.TFLiteConverter) -> bytes:
    """`converter.convert()` with its SavedModel signature dump (a TensorSpec line per variable) and the MLIR
    converter's C++ lines hidden unless --verbose."""
    with quiet_native():
        return bytes(converter.convert())


def _convert(converter: tf.lite.TFLiteConverter) -> bytes:
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    return run_converter(converter)


def network_of(model: keras.Model) -> keras.Model:
    """The CP-Mobile network inside a full model (or the model itself when it is the network)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer(NETWORK_NAME) if NETWORK_NAME in names else model


def frontend_of(model: keras.Model) -> keras.layers.Layer:
    """The MelFrontend layer of a full model."""
    names = {layer.name for layer in model.layers}
    if FRONTEND_NAME not in names:
        raise ValueError(f"model {model.name!r} has no {FRONTEND_NAME!r} layer: export needs a full asc-tf model "
                         "(waveform in), not the network alone")
    return model.get_layer(FRONTEND_NAME)


def network_shape(network: keras.Model) -> tuple[int, ...]:
    """Input shape of the network without the batch axis (`(n_mels, frames, 1)`)."""
    return tuple(int(d) for d in network.input.shape[1:])


def convert_network_int8(network: keras.Model, representative: Iterable[np.ndarray]) -> bytes:
    """Full-integer network: int8 weights and activations, int32 biases, int8 input and output.

    `representative` yields log-mel examples `[1, n_mels, frames, 1]` float32 for post-training calibration.
    """
    samples = [np.asarray(x, dtype=np.float32).reshape((1, *network_shape(network))) for x in representative]
    if not samples:
        raise ValueError("the representative set is empty: int8 calibration needs log-mel examples")

    def dataset() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample]

    converter = tf.lite.TFLiteConverter.from_keras_model(_batch_one(network, network_shape(network), "log_mel"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    log.info("int8 calibration on %d representative log-mels", len(samples))
    return run_converter(converter)


def convert_network_fp16(network: keras.Model) -> bytes:
    """Network with float16 weights (dequantized to float32 at load), float32 input and output."""
    converter = tf.lite.TFLiteConverter.from_keras_model(_batch_one(network, network_shape(network), "log_mel"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return _convert(converter)


def convert_network_float32(network: keras.Model) -> bytes:
    """Network in float32 (reference; also what the audit tests on a model made too large)."""
    return _convert(tf.lite.TFLiteConverter.from_keras_model(_batch_one(network, network_shape(network), "log_mel")))


def convert_frontend(frontend: keras.layers.Layer, samples: int) -> bytes:
    """The float32 front end: waveform `[1, samples]` -> log-mel `[1, n_mels, frames, 1]` (RFFT2D is builtin)."""
    return _convert(tf.lite.TFLiteConverter.from_keras_model(_batch_one(frontend, (samples,), "waveform")))


def _end_to_end_model(model: keras.Model, samples: int) -> keras.Model:
    frontend, network = frontend_of(model), network_of(model)

    def forward(x: keras.KerasTensor) -> keras.KerasTensor:
        return network(frontend(x, training=False), training=False)

    return _batch_one(keras.layers.Lambda(forward, name="cp_mobile_forward"), (samples,), "waveform",
                      head=keras.layers.Softmax(name="probabilities"))


def convert_end_to_end_int8(model: keras.Model, samples: int, representative: Iterable[np.ndarray]) -> bytes:
    """Waveform float32 -> probabilities float32 with the front end in float32 and the network in int8: the
    converter's selective quantization (`QuantizationDebugger`, the front end's tensors denylisted by name), calibrated
    on `representative` clips `[1, samples]`. Full-integer conversion would quantize the front end too (framing,
    mel product, log), which ruins the log-mel."""
    wrapped = _end_to_end_model(model, samples)
    clips = [np.asarray(x, dtype=np.float32).reshape(1, samples) for x in representative]
    if not clips:
        raise ValueError("the representative set is empty: int8 calibration needs clips")

    def dataset() -> Iterator[list[np.ndarray]]:
        for clip in clips:
            yield [clip]

    # the denylist names tensors of this very model's float conversion (a new Keras model gets new name prefixes)
    from asc_tf.export.runtime import TFLiteModel

    float_model = TFLiteModel(_convert(tf.lite.TFLiteConverter.from_keras_model(wrapped)), 1)
    names = [d["name"] for d in float_model.interpreter.get_tensor_details()]
    frontend = [name for name in names if f"/{FRONTEND_NAME}" in name]
    if not frontend:
        raise ValueError(f"no tensor of the end-to-end model is named after its {FRONTEND_NAME!r} layer")
    converter = tf.lite.TFLiteConverter.from_keras_model(wrapped)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=frontend)
    with quiet_native():
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset,
                                                             debug_options=options)
        return bytes(debugger.get_nondebug_quantized_model())


def convert_end_to_end(model: keras.Model, samples: int, fp16: bool = False) -> bytes:
    """One file: waveform `[1, samples]` -> class probabilities `[1, n_classes]` (softmax of the logits), float32
    throughout, or with float16 weights (`fp16`: dequantized to float32 at load, as the fp16 network)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(_end_to_end_model(model, samples))
    if fp16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return _convert(converter)
