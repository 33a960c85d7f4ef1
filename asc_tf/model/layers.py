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
    (by N/(N-1), 1.5e-4 relative on the golden batch of 4 clips). No mask, no renorm. In training, NHWC
    inputs go through TensorFlow's fused kernel (FusedBatchNormV3: normalises with the biased variance and
    returns the Bessel-corrected one, torch's pair); `fused=False` keeps the elementwise ops (moments,
    normalisation and their gradients, about half of a CPU training step).
    """

    def __init__(self, *args: Any, fused: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fused = fused

    def get_config(self) -> dict:
        return {**super().get_config(), "fused": self.fused}

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None, mask: Any = None) -> tf.Tensor:
        if mask is not None or self.renorm:
            raise NotImplementedError("TorchBatchNorm supports neither masks nor renorm")
        if training and self.trainable and self._fusable(inputs):
            return self._fused_training(inputs)
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = ops.cast(inputs, compute_dtype)  # as Keras: statistics in float32 at least
        gamma = ops.cast(self.gamma, compute_dtype) if self.scale else None
        beta = ops.cast(self.beta, compute_dtype) if self.center else None
        if training and self.trainable:
            mean, variance = ops.moments(inputs, axes=self._reduction_axes, synchronized=self.synchronized)
            count = ops.cast(ops.size(inputs) // ops.shape(inputs)[self.axis], compute_dtype)
            self._update_moving_statistics(mean, variance * count / ops.maximum(count - 1.0, 1.0))
        else:
            mean = ops.cast(self.moving_mean, compute_dtype)
            variance = ops.cast(self.moving_variance, compute_dtype)
        outputs = ops.batch_normalization(
            inputs, mean, variance, axis=self.axis, offset=beta, scale=gamma, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)

    def _fusable(self, inputs: tf.Tensor) -> bool:
        """FusedBatchNormV3 takes rank-4 NHWC in half or single precision (not float64), no cross-replica sync."""
        return (self.fused and not self.synchronized and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and inputs.dtype in (tf.float16, tf.bfloat16, tf.float32))

    def _fused_training(self, inputs: tf.Tensor) -> tf.Tensor:
        """One training-mode normalisation by the fused kernel; the moving statistics as torch updates them."""
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        empty = tf.constant([], tf.float32)
        # The raw op, not tf.compat.v1.nn.fused_batch_norm: that wrapper raises epsilon to 1.001e-5 (cuDNN's floor).
        outputs, mean, unbiased, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        self._update_moving_statistics(mean, unbiased)
        return ops.cast(outputs, self.compute_dtype)

    def _update_moving_statistics(self, mean: tf.Tensor, unbiased_variance: tf.Tensor) -> None:
        """torch's running averages: new = momentum * old + (1 - momentum) * batch (Keras' momentum convention)."""
        momentum = ops.cast(self.momentum, mean.dtype)
        for variable, batch in ((self.moving_mean, mean), (self.moving_variance, unbiased_variance)):
            variable.assign(ops.cast(ops.cast(variable, mean.dtype) * momentum + batch * (1.0 - momentum),
                                     variable.dtype))


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
