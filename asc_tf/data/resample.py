"""Upstream's resampler (`torchaudio.transforms.Resample` defaults) in numpy, on the band of its non-zero taps.

Hand-written because no installed library designs this exact filter (windowed sinc, Hann, width 6,
rolloff 0.99): soxr and scipy use other anti-alias filters that change the top mel bands
(`../shared/spec/dependencies.md`), so a checkpoint trained upstream would see other inputs.
Upstream multiplies a dense polyphase kernel (`[320, 459]` for 44.1 -> 32 kHz) whose rows have only 16-17
non-zero taps, on a diagonal band. Here the rows are cut into blocks of 32 phases, each multiplied with only the
columns its taps span (1.9 M instead of 14.8 M MACs per clip; a CSR product of the 0.53 M non-zero taps alone
is slower, BLAS blocks win, `bench/resample.py`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99
PHASES_PER_BLOCK = 32
# Each product stays below OpenBLAS's single-thread limit (m * n * k <= 65536 * 4): BLAS threads would
# busy-wait against conversion workers (one process per core), and a clip is too small to share.
MAX_PRODUCT = 250_000
# The dense kernel upstream builds (float64 while designed) for a pair of rates with a small common divisor grows
# as new * orig: 32000 -> 32001 Hz would need 8 GB and get the process killed. 2**26 elements (512 MiB) is far above
# every usual pair (44100 -> 32000: 320 x 473) and refuses the absurd ones with a message instead.
MAX_KERNEL_ELEMENTS = 2 ** 26


class RateError(ValueError):
    """A pair of sample rates whose resampling kernel would not fit in memory."""


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


@dataclass(frozen=True)
class Block:
    """Phases `[first, stop)` of the polyphase kernel and the taps `[lo, hi)` where they are non-zero."""

    first: int
    stop: int
    lo: int
    hi: int
    weights: np.ndarray  # [hi - lo, stop - first] float32: the kernel's values, transposed


@functools.lru_cache(maxsize=8)
def banded_kernel(orig_sr: int, new_sr: int) -> tuple[tuple[Block, ...], int, int]:
    """`sinc_kernel` cut into blocks of `PHASES_PER_BLOCK` phases that keep every non-zero tap; also `width`
    and the kernel's length. Rates already divided by their gcd."""
    kernel, width = sinc_kernel(orig_sr, new_sr)
    nonzero = kernel != 0
    blocks = []
    for first in range(0, new_sr, PHASES_PER_BLOCK):
        stop = min(new_sr, first + PHASES_PER_BLOCK)
        columns = np.flatnonzero(nonzero[first:stop].any(axis=0))
        lo, hi = (int(columns[0]), int(columns[-1]) + 1) if columns.size else (0, 1)
        weights = np.ascontiguousarray(kernel[first:stop, lo:hi].T)
        weights.setflags(write=False)
        blocks.append(Block(first, stop, lo, hi, weights))
    return tuple(blocks), width, kernel.shape[1]


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
    columns = orig + 2 * math.ceil(LOWPASS_FILTER_WIDTH * orig / (min(orig, new) * ROLLOFF))
    if new * columns > MAX_KERNEL_ELEMENTS:
        raise RateError(f"resampling {orig_sr} Hz to {new_sr} Hz needs a {new:,} x {columns:,} polyphase kernel "
                        f"({new * columns * 8 / 2 ** 30:.1f} GiB while designed): use rates with a larger common "
                        "divisor (e.g. 16000, 32000, 44100 or 48000 Hz)")
    blocks, width, taps = banded_kernel(orig, new)
    lead_shape, length = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, length)
    padded = np.pad(flat, ((0, 0), (width, width + orig)))
    # conv1d with stride `orig`: frames of the kernel's length [clips, steps, taps], one per `new` outputs.
    frames = np.lib.stride_tricks.sliding_window_view(padded, taps, axis=-1)[:, ::orig]
    out = np.empty(frames.shape[:2] + (new,), dtype=np.float32)
    rows = max(1, MAX_PRODUCT // max(b.weights.size for b in blocks))
    for clip in range(frames.shape[0]):
        for start in range(0, frames.shape[1], rows):
            chunk = frames[clip, start:start + rows]
            for b in blocks:
                np.matmul(chunk[:, b.lo:b.hi], b.weights, out=out[clip, start:start + rows, b.first:b.stop])
    target = math.ceil(new * length / orig)
    return np.ascontiguousarray(out.reshape(flat.shape[0], -1)[:, :target]).reshape(*lead_shape, target)
