"""The int8 TFLite network of a QAT model: scales and zero points come from the fake-quant ranges, no calibration."""

from __future__ import annotations

import types
import warnings
from typing import Any

import tensorflow as tf

from asc_tf.export.tflite import run_converter


def convert_qat_int8(qat_model: Any, tk: types.ModuleType) -> bytes:
    """Batch 1 (fixed shapes for the audit), int8 weights and activations, int8 input and output."""
    x = tk.Input(tuple(qat_model.input.shape[1:]), batch_size=1, name="log_mel")
    wrapped = tk.Model(x, qat_model(x, training=False))
    converter = tf.lite.TFLiteConverter.from_keras_model(wrapped)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # with fake-quant ops this is full-integer QAT conversion
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": QAT's input range is in the graph
        warnings.simplefilter("ignore", UserWarning)
        return run_converter(converter)
