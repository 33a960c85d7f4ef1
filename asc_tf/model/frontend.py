"""MelFrontend: upstream's torchaudio MelSpectrogram + masking + log(x + 1e-5), as one Keras layer.

Waveform `[B, samples]` at `sample_rate` -> log-mel `[B, n_mels, frames, 1]`. The filterbank and
window are recomputed from the settings (no weights), so a saved model holds only the network's.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from asc_tf.config import Config

LOG_OFFSET = 1e-5  # upstream: (x + 1e-5).log()


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """HTK mel scale (torchaudio mel_scale='htk')."""
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: Optional[float]) -> np.ndarray:
    """torchaudio `melscale_fbanks(htk, norm=None)` `[n_fft//2+1, n_mels]` (float64 maths, 2e-5 from torch's)."""
    f_max = float(sample_rate // 2) if f_max is None else float(f_max)
    all_freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    m_pts = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def periodic_hann(length: int) -> np.ndarray:
    """torch.hann_window(length) (periodic), float32."""
    n = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * math.pi * n / length)).astype(np.float32)


def mask_along_axis(x: tf.Tensor, value: tf.Tensor, min_value: tf.Tensor, axis: int) -> tf.Tensor:
    """torchaudio `mask_along_axis_iid` core: zero bins [floor(min_value), floor(min_value) + floor(value)).

    `value`, `min_value` are the per-clip draws `[B]`; `axis` indexes `x` (`[B, F, T, C]`).
    """
    size = tf.shape(x)[axis]
    start = tf.cast(tf.floor(min_value), tf.int32)
    end = start + tf.cast(tf.floor(value), tf.int32)
    idx = tf.range(size)[None, :]
    keep = tf.logical_or(idx < start[:, None], idx >= end[:, None])  # [B, size]
    shape = [-1, 1, 1, 1]
    shape[axis] = size
    keep = tf.reshape(keep, tf.stack([tf.shape(x)[0]] + shape[1:]))
    return tf.where(keep, x, tf.zeros_like(x))


@keras.saving.register_keras_serializable(package="asc_tf")
class MelFrontend(keras.layers.Layer):
    """Power STFT (periodic Hann, centred, reflect) -> HTK mel -> [training: masking] -> log(x + 1e-5)."""

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 4096,
        window_length: int = 3072,
        hop_length: int = 500,
        n_mels: int = 256,
        f_min: float = 0,
        f_max: Optional[float] = None,
        freqm: int = 48,
        timem: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if window_length > n_fft:
            raise ValueError(f"window_length {window_length} > n_fft {n_fft}")
        self.sample_rate, self.n_fft, self.window_length = sample_rate, n_fft, window_length
        self.hop_length, self.n_mels, self.f_min, self.f_max = hop_length, n_mels, f_min, f_max
        self.freqm, self.timem = freqm, timem
        self.seed_generator = keras.random.SeedGenerator()  # reseeded per epoch by the trainer
        self._fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
        self._window = periodic_hann(window_length)

    @classmethod
    def from_config_object(cls, config: Config, **kwargs: Any) -> "MelFrontend":
        """The front end of a project Config."""
        names = ("sample_rate", "n_fft", "window_length", "hop_length", "n_mels", "f_min", "f_max", "freqm", "timem")
        return cls(**{n: getattr(config, n) for n in names}, **kwargs)

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def mel_power(self, waveform: tf.Tensor) -> tf.Tensor:
        """Mel power `[B, n_mels, frames, 1]` (torch.stft center=True, reflect; window centred in n_fft)."""
        x = tf.cast(waveform, tf.float32)
        n_frames = self.n_frames(int(x.shape[-1]))
        half = self.n_fft // 2
        x = tf.pad(x, [[0, 0], [half, half]], mode="REFLECT")
        # torch zero-pads the window centrally to n_fft; power ignores the phase shift of framing
        # only the window's support, so start at the left zero margin and use an end-padded FFT.
        offset = (self.n_fft - self.window_length) // 2
        frames = tf.signal.frame(x[:, offset:], self.window_length, self.hop_length)[:, :n_frames]
        spec = tf.signal.rfft(frames * self._window, fft_length=[self.n_fft])
        power = tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))  # [B, T, bins]
        mel = tf.linalg.matmul(power, self._fb)  # [B, T, n_mels]
        return tf.transpose(mel, [0, 2, 1])[..., None]

    def augment(self, mel: tf.Tensor) -> tf.Tensor:
        """Upstream's FrequencyMasking(freqm) and TimeMasking(timem), iid per clip, with TF draws."""
        batch = tf.shape(mel)[0]
        for param, axis in ((self.freqm, 1), (self.timem, 2)):
            if param < 1:
                continue  # torchaudio: mask_param < 1 is the identity
            value = keras.random.uniform([batch], seed=self.seed_generator) * param
            min_value = keras.random.uniform([batch], seed=self.seed_generator) * (
                tf.cast(tf.shape(mel)[axis], tf.float32) - value)
            mel = mask_along_axis(mel, value, min_value, axis)
        return mel

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        mel = self.mel_power(inputs)
        if training:
            mel = self.augment(mel)
        return tf.math.log(mel + LOG_OFFSET)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.n_mels, self.n_frames(input_shape[-1]), 1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate, n_fft=self.n_fft, window_length=self.window_length,
            hop_length=self.hop_length, n_mels=self.n_mels, f_min=self.f_min, f_max=self.f_max,
            freqm=self.freqm, timem=self.timem,
        )
        return config
