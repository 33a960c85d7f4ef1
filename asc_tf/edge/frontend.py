"""The log-mel front end in numpy: the bundle's front-end model, computed without TensorFlow.

Frames are a strided view (no copy) windowed straight into a zero-padded scratch buffer kept per thread, the FFT
is scipy's pocketfft in float32 (it transforms the 65 frames together with SIMD; numpy's FFT takes 2.3x as long
here); the power goes to that thread's buffer too, the banded mel product (21 blocks) and the log fill the one
array returned.
Time per stage of the whole shipped path: `bench/edge_stages.py`.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Optional

import numpy as np
import scipy.fft

from asc_tf.edge.mel import BLOCK_OVERHEAD_MACS, MelBands, SettingsError, mel_filterbank, periodic_hann

INTEGER_SETTINGS = ("sample_rate", "n_fft", "window_length", "hop_length", "n_mels")
REAL_SETTINGS = ("f_min", "f_max")


class LogMel:
    """Waveform `[samples]` -> log-mel `[n_mels, frames]` float32, as the Keras `MelFrontend` in inference."""

    def __init__(self, sample_rate: int = 32000, n_fft: int = 4096, window_length: int = 3072, hop_length: int = 500,
                 n_mels: int = 256, f_min: float = 0.0, f_max: Optional[float] = None, log_offset: float = 1e-5) -> None:
        if window_length > n_fft:
            raise SettingsError(f"window_length {window_length} > n_fft {n_fft}")
        self.n_fft, self.window_length, self.hop_length, self.n_mels = n_fft, window_length, hop_length, n_mels
        self.window = periodic_hann(window_length)
        self.bands = MelBands.from_dense(mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max))
        self.blocks = self.bands.blocks(BLOCK_OVERHEAD_MACS)
        self.log_offset = np.float32(log_offset)
        self.offset = (n_fft - window_length) // 2  # torch centres the window in n_fft; power ignores the shift
        self._local = threading.local()

    @classmethod
    def from_manifest(cls, section: dict[str, Any]) -> "LogMel":
        """The front end described by a bundle manifest's `frontend` section.

        Raises SettingsError (a ValueError) naming the field for a section that describes no front end computed
        here, and only for that: a failure while building a valid one is not the manifest's fault and is left as
        it is (it was once reported as "manifest front end unusable" on 32-bit numpy)."""
        if not isinstance(section, dict):
            raise SettingsError(f"the front-end section is a {type(section).__name__}, not an object")
        if section.get("window", "periodic hann") != "periodic hann" or section.get("mel_scale", "htk") != "htk" \
                or section.get("padding", "reflect") != "reflect" or section.get("power", 2.0) != 2.0:
            raise SettingsError(f"unsupported front end (window, mel_scale, padding, power): {section}")
        missing = [name for name in (*INTEGER_SETTINGS, *REAL_SETTINGS) if name not in section]
        if missing:
            raise SettingsError(f"field(s) {missing} missing")
        values: dict[str, Any] = {}
        for name in INTEGER_SETTINGS:
            value = section[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SettingsError(f"{name} must be a positive integer, got {value!r}")
            values[name] = value
        for name in (*REAL_SETTINGS, "log_offset"):
            value = section.get(name, 1e-5)  # only log_offset has a default
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SettingsError(f"{name} must be a number, got {value!r}")
            values[name] = float(value)
        if not 0.0 <= values["f_min"] < values["f_max"] <= values["sample_rate"] / 2:
            raise SettingsError(f"f_min {values['f_min']:g} and f_max {values['f_max']:g} must satisfy "
                                f"0 <= f_min < f_max <= sample_rate / 2 ({values['sample_rate'] / 2:g})")
        if values["log_offset"] <= 0.0:
            raise SettingsError(f"log_offset must be positive, got {values['log_offset']:g}")
        return cls(**values)

    def n_frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length

    def power(self, waveform: np.ndarray) -> np.ndarray:
        """Power spectrogram `[frames, n_fft // 2 + 1]` (torch.stft, center=True, reflect padding)."""
        return self._power(waveform).copy()

    def _power(self, waveform: np.ndarray) -> np.ndarray:
        """`power` in this thread's buffer, valid until its next call."""
        x = np.asarray(waveform, dtype=np.float32)
        if x.ndim != 1 or x.shape[0] <= self.n_fft // 2:
            raise ValueError(f"expected one clip [samples] longer than {self.n_fft // 2} samples, got shape {x.shape}")
        padded = np.pad(x, self.n_fft // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded[self.offset:], self.window_length)
        frames = frames[::self.hop_length][:self.n_frames(x.shape[0])]
        scratch = self._scratch(frames.shape[0])
        # windowed frames in the first window_length samples, zeros after: rfft(frames * window, n=n_fft)
        np.multiply(frames, self.window, out=scratch.frames[:, :self.window_length])
        spectrum = scipy.fft.rfft(scratch.frames, axis=-1, workers=1).view(np.float32)  # [frames, 2 * bins]: re, im
        np.square(spectrum, out=spectrum)  # in place, contiguous: faster than squaring the strided re and im views
        return np.add(spectrum[:, 0::2], spectrum[:, 1::2], out=scratch.power)

    def mel(self, power: np.ndarray) -> np.ndarray:
        """Power `[frames, bins]` -> mel `[frames, n_mels]`, block by block of neighbouring bands."""
        out = np.empty((power.shape[0], self.n_mels), np.float32)
        for b in self.blocks:
            np.matmul(power[:, b.bin_lo:b.bin_hi], b.weights, out=out[:, b.band_lo:b.band_hi])
        return out

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel `[n_mels, frames]` float32: `log(mel + log_offset)` (a new array, no view of a buffer)."""
        out = self.mel(self._power(waveform))
        np.add(out, self.log_offset, out=out)
        return np.log(out, out=out).T

    def _scratch(self, n_frames: int) -> "_Scratch":
        """This thread's buffers for `n_frames` frames (a Classifier may be shared by threads)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None or scratch.frames.shape[0] != n_frames:
            scratch = self._local.scratch = _Scratch(np.zeros((n_frames, self.n_fft), np.float32),
                                                     np.empty((n_frames, self.n_fft // 2 + 1), np.float32))
        return scratch


class _Scratch:
    """Per-thread buffers of `LogMel`: zero-padded frames `[frames, n_fft]` (zeros past the window) and power."""

    __slots__ = ("frames", "power")

    def __init__(self, frames: np.ndarray, power: np.ndarray) -> None:
        self.frames, self.power = frames, power
