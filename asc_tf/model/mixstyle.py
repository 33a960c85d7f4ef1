"""FreqMixStyle: upstream's Freq-MixStyle (`helpers/utils.py::mixstyle`) as a training-only Keras layer."""

from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf

MIXSTYLE_EPS = 1e-6


def freq_mixstyle(x: tf.Tensor, lmda: tf.Tensor, perm: tf.Tensor, eps: float = MIXSTYLE_EPS) -> tf.Tensor:
    """Deterministic core: mix per-clip, per-frequency statistics of `x` `[B, F, T, C]` with clip `perm`.

    `lmda` `[B]` (Beta draws), `perm` `[B]` (permutation). Mean and unbiased variance over time and
    channel, without gradient, as upstream.
    """
    x = tf.convert_to_tensor(x)
    n = tf.cast(tf.shape(x)[2] * tf.shape(x)[3], x.dtype)
    f_mu = tf.reduce_mean(x, axis=[2, 3], keepdims=True)
    f_var = tf.reduce_sum(tf.square(x - f_mu), axis=[2, 3], keepdims=True) / (n - 1.0)
    f_sig = tf.stop_gradient(tf.sqrt(f_var + eps))
    f_mu = tf.stop_gradient(f_mu)
    x_normed = (x - f_mu) / f_sig
    lmda = tf.reshape(tf.cast(lmda, x.dtype), [-1, 1, 1, 1])
    mu_mix = f_mu * lmda + tf.gather(f_mu, perm) * (1.0 - lmda)
    sig_mix = f_sig * lmda + tf.gather(f_sig, perm) * (1.0 - lmda)
    return x_normed * sig_mix + mu_mix


@keras.saving.register_keras_serializable(package="asc_tf")
class FreqMixStyle(keras.layers.Layer):
    """In training, with probability `p` per batch, Freq-MixStyle with Beta(alpha, alpha) per clip."""

    def __init__(self, p: float = 0.4, alpha: float = 0.3, eps: float = MIXSTYLE_EPS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p, self.alpha, self.eps = p, alpha, eps
        self.seed_generator = keras.random.SeedGenerator()  # reseeded per epoch by the trainer

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        if not training or self.p <= 0:
            return inputs
        batch = tf.shape(inputs)[0]

        def mixed() -> tf.Tensor:
            lmda = keras.random.beta([batch], self.alpha, self.alpha, seed=self.seed_generator)
            perm = keras.random.shuffle(tf.range(batch), seed=self.seed_generator)
            return freq_mixstyle(inputs, lmda, perm, self.eps)

        # upstream: `if np.random.rand() > p: return x`, one coin per batch
        return tf.cond(keras.random.uniform([], seed=self.seed_generator) > self.p, lambda: tf.identity(inputs), mixed)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(p=self.p, alpha=self.alpha, eps=self.eps)
        return config
