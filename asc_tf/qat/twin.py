"""The CP-Mobile network rebuilt with tf_keras (Keras 2), layer for layer, so tfmot can quantize it.

Same layer names and order as `asc_tf.model.cp_mobile.build_network`, so weights copy both ways by name.
The two custom Keras 3 layers map to plain tf_keras layers that tfmot's 8-bit registry knows:
`TorchBatchNorm` -> `BatchNormalization` (identical at inference; only the running-variance update of
training differs, biased instead of unbiased, N/(N-1)); `StridedDepthwiseConv2D` -> `DepthwiseConv2D`
(float32 with oneDNN runs unequal strides natively, which is what the Keras 3 layer itself does in float32).
"""

from __future__ import annotations

import types
from typing import Any

import keras

from asc_tf.model.cp_mobile import BN_EPSILON, BN_MOMENTUM, NETWORK_NAME
from asc_tf.model.layers import TorchBatchNorm, _native_unequal_strides
from asc_tf.qat.errors import QATError

_PLAIN = ("InputLayer", "ZeroPadding2D", "Conv2D", "ReLU", "Add", "AveragePooling2D", "GlobalAveragePooling2D")


def _twin_layer(layer: keras.layers.Layer, tk: types.ModuleType) -> Any:
    """The tf_keras layer of one Keras 3 network layer (same name, same arithmetic at inference)."""
    L = tk.layers
    kind = type(layer).__name__
    if isinstance(layer, TorchBatchNorm):
        return L.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=layer.name)
    if kind == "StridedDepthwiseConv2D":
        return L.DepthwiseConv2D(layer.kernel_size, strides=layer.strides, padding=layer.padding,
                                 use_bias=layer.use_bias, name=layer.name)
    if kind == "Conv2D":
        return L.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                        use_bias=layer.use_bias, name=layer.name)
    if kind == "ZeroPadding2D":
        return L.ZeroPadding2D(layer.padding, name=layer.name)
    if kind == "AveragePooling2D":
        return L.AveragePooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding, name=layer.name)
    if kind == "GlobalAveragePooling2D":
        return L.GlobalAveragePooling2D(name=layer.name)
    if kind == "ReLU":
        return L.ReLU(name=layer.name)
    if kind == "Add":
        return L.Add(name=layer.name)
    raise QATError(f"layer {layer.name!r} ({kind}) has no tf_keras twin: QAT supports the CP-Mobile network only")


def build_twin(network: keras.Model, tk: types.ModuleType, batch_size: int | None = None) -> Any:
    """A tf_keras functional model with `network`'s graph, layer names and weights (float32)."""
    if network.dtype_policy.name != "float32":
        raise QATError(f"QAT needs a float32 network, got {network.dtype_policy.name}")
    if not _native_unequal_strides("float32"):
        raise QATError("this TensorFlow build has no oneDNN: its DepthwiseConv2D cannot run the unequal strides "
                       "of CP-Mobile, so the tf_keras twin (and QAT) cannot be built here")
    tensors: dict[int, Any] = {}
    inputs = tk.Input(tuple(network.input.shape[1:]), batch_size=batch_size, name=network.input.name.split(":")[0])
    tensors[id(network.inputs[0])] = inputs
    for layer in network.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        node = layer._inbound_nodes[0]  # noqa: SLF001 (the functional graph: one call per layer)
        args = [tensors[id(t)] for t in node.input_tensors]
        twin = _twin_layer(layer, tk)
        out = twin(args if len(args) > 1 else args[0])
        tensors[id(layer.output)] = out
    twin_model = tk.Model(inputs, tensors[id(network.outputs[0])], name=NETWORK_NAME)
    copy_weights(network, twin_model)
    return twin_model


def float_weights(model: Any) -> dict[str, list[Any]]:
    """Layer name -> its float weights (variables, in the layer's order) for every layer holding some.

    A tfmot `QuantizeWrapperV2` named `quant_<name>` counts as layer `<name>`: its float weights are those
    not created by the wrapper (the wrapper's own are `quant_<name>/...`: ranges, optimizer step)."""
    out: dict[str, list[Any]] = {}
    for layer in model.layers:
        if type(layer).__name__ == "QuantizeLayer":
            continue
        inner = getattr(layer, "layer", None)
        if inner is not None:  # QAT-wrapped
            own = f"{layer.name}/"
            variables = [w for w in layer.weights if not w.name.startswith(own)]
            name = inner.name
        else:
            variables, name = list(layer.weights), layer.name
        if variables:
            out[name] = variables
    return out


def copy_weights(source: Any, target: Any) -> None:
    """Copy every weighted layer's float weights by name (Keras 3 <-> tf_keras, plain or QAT-wrapped)."""
    src, dst = float_weights(source), float_weights(target)
    if set(src) != set(dst):
        raise QATError(f"networks differ: layers only in one of them: {sorted(set(src) ^ set(dst))[:5]}")
    for name, variables in dst.items():
        values = [v.numpy() for v in src[name]]
        if [tuple(v.shape) for v in variables] != [x.shape for x in values]:
            raise QATError(f"layer {name!r}: weight shapes differ between the networks")
        for variable, value in zip(variables, values):
            variable.assign(value)
