"""Upstream's resampler (`torchaudio.transforms.Resample` defaults) in numpy.

Hand-written because no installed library designs this exact filter (windowed sinc, Hann, width 6,
rolloff 0.99): soxr and scipy use other anti-alias filters that change the top mel bands
(`../shared/spec/dependencies.md`), so a checkpoint trained upstream would see other inputs.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from threadpoolctl import ThreadpoolController

_THREADPOOLS = ThreadpoolController()
LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99


@functools.lru_cache(maxsize=8)
def sinc_kernel(orig_sr: int, new_sr: int) -> tuple[np.ndarray, int]:
    """Polyphase kernel `[new, 2 * width + orig]` (float32, computed in float64) and `width`,
    for rates already divided by their gcd, exactly as torchaudio's `_get_sinc_resample_kernel`."""
    base_freq = min(orig_sr, new_sr) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig_sr / base_freq)
    idx = np.arange(-width, width + orig_sr, dtype=np.float64)[None, :] / orig_sr
    t = np.arange(0, -new_sr, -1, dtype=np.float64)[:, None] / new_sr + idx
    t *= base_freq
    t = np.clip(t, -LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = np.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    kernel *= window * (base_freq / orig_sr)
    kernel = kernel.astype(np.float32)
    kernel.setflags(write=False)
    return kernel, width


def resample(waveform: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample float audio `[..., samples]` from `orig_sr` to `new_sr` with upstream's filter.

    Output length is `ceil(samples * new_sr / orig_sr)`, as upstream. Any pair of positive integer rates.
    """
    if orig_sr <= 0 or new_sr <= 0 or int(orig_sr) != orig_sr or int(new_sr) != new_sr:
        raise ValueError(f"sample rates must be positive integers, got {orig_sr} and {new_sr}")
    x = np.asarray(waveform, dtype=np.float32)
    if orig_sr == new_sr:
        return x.copy()
    gcd = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // gcd, int(new_sr) // gcd
    kernel, width = sinc_kernel(orig, new)
    lead_shape, length = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, length)
    padded = np.pad(flat, ((0, 0), (width, width + orig)))
    # conv1d with stride `orig`: frames of the kernel's length, one per output block of `new` samples.
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1], axis=-1)[:, ::orig]
    # One BLAS thread: the product is small, the result is then the same whatever the thread count (so a
    # conversion in 1 or N processes writes identical shards), and busy-waiting threads cannot oversubscribe.
    with _THREADPOOLS.limit(limits=1, user_api="blas"):
        out = (frames @ kernel.T).reshape(flat.shape[0], -1)
    target = math.ceil(new * length / orig)
    return np.ascontiguousarray(out[:, :target]).reshape(*lead_shape, target)
