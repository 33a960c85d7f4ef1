"""Two Keras layers with PyTorch's arithmetic where Keras's differs (BatchNorm statistics, strided depthwise)."""

from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="asc_tf")
class TorchBatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization whose moving variance takes the unbiased batch variance, as torch's BatchNorm2d.

    Normalisation uses the biased variance in both frameworks; only the running statistic differs
    (by N/(N-1), 1.5e-4 relative on the golden batch of 4 clips). No mask, no renorm.
    """

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None, mask: Any = None) -> tf.Tensor:
        if mask is not None or self.renorm:
            raise NotImplementedError("TorchBatchNorm supports neither masks nor renorm")
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = ops.cast(inputs, compute_dtype)  # as Keras: statistics in float32 at least
        gamma = ops.cast(self.gamma, compute_dtype) if self.scale else None
        beta = ops.cast(self.beta, compute_dtype) if self.center else None
        if training and self.trainable:
            mean, variance = ops.moments(inputs, axes=self._reduction_axes, synchronized=self.synchronized)
            count = ops.cast(ops.size(inputs) // ops.shape(inputs)[self.axis], compute_dtype)
            unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
            momentum = ops.cast(self.momentum, compute_dtype)
            self.moving_mean.assign(
                ops.cast(ops.cast(self.moving_mean, compute_dtype) * momentum + mean * (1.0 - momentum),
                         self.moving_mean.dtype)
            )
            self.moving_variance.assign(
                ops.cast(ops.cast(self.moving_variance, compute_dtype) * momentum + unbiased * (1.0 - momentum),
                         self.moving_variance.dtype)
            )
        else:
            mean = ops.cast(self.moving_mean, compute_dtype)
            variance = ops.cast(self.moving_variance, compute_dtype)
        outputs = ops.batch_normalization(
            inputs, mean, variance, axis=self.axis, offset=beta, scale=gamma, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)


def _native_unequal_strides(dtype: str) -> bool:
    """Whether TF's DepthwiseConv2dNative runs strides (1, 2) here: only through oneDNN, only in float32."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # private API moved: take the portable path
        onednn = False
    return onednn and dtype == "float32"


@keras.saving.register_keras_serializable(package="asc_tf")
class StridedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D that runs unequal strides (1, 2)/(2, 1) everywhere.

    TensorFlow's DepthwiseConv2dNative does unequal strides only through oneDNN in float32; otherwise
    (float16/float64, builds without oneDNN) this layer computes stride 1 and subsamples: same numbers,
    twice the MACs of this layer. The float32 graph (what TFLite export sees) keeps the native op.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        strides = tuple(self.strides)
        portable = strides[0] != strides[1] and not _native_unequal_strides(self.compute_dtype)
        if not portable or self.padding != "valid" or self.data_format != "channels_last":
            return super().call(inputs)
        kernel = ops.cast(self.kernel, inputs.dtype)
        outputs = tf.nn.depthwise_conv2d(inputs, kernel, [1, 1, 1, 1], "VALID", dilations=self.dilation_rate)
        outputs = outputs[:, :: strides[0], :: strides[1], :]
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return outputs if self.activation is None else self.activation(outputs)
