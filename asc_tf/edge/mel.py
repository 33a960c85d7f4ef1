"""Upstream's mel filterbank and window in numpy, and the filterbank's banded structure (no TensorFlow).

Each HTK mel band is one run of consecutive FFT bins (4,067 non-zero weights of 2049 x 256 for the
baseline), so the mel product is computed from (first bin, length, weights) per band, or from a few
dense blocks of neighbouring bands (`MelBands.blocks`), instead of a 2049 x 256 matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

# Price of one more block of bands, in MACs per frame (`MelBands.blocks`). Measured on this project's CPU
# (docs/edge.md, "The banded mel"):
# from 1,000 to 30,000 the time changes little in TensorFlow (batch 256 and 1) and numpy; 1,000 gives the baseline
# 21 blocks, 22,682 MACs per frame (1.47 M per clip, dense 34.1 M) and 90 kB of block weights in the TFLite front end.
BLOCK_OVERHEAD_MACS = 1000


class SettingsError(ValueError):
    """Front-end settings (e.g. a bundle manifest's `frontend` section) that describe no front end computed here."""


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


@dataclass(frozen=True)
class Block:
    """Bands `[band_lo, band_hi)` computed together from bins `[bin_lo, bin_hi)` with one dense product."""

    band_lo: int
    band_hi: int
    bin_lo: int
    bin_hi: int
    weights: np.ndarray  # [bin_hi - bin_lo, band_hi - band_lo] float32, zero outside each band's run

    @property
    def macs(self) -> int:
        return self.weights.size


@dataclass(frozen=True)
class MelBands:
    """A filterbank `[n_bins, n_mels]` as, per band, its first bin and its run of non-zero weights."""

    first_bin: np.ndarray  # [n_mels] np.intp (the platform's index type: int32 on 32-bit numpy)
    n_bins: np.ndarray  # [n_mels] np.intp, >= 1
    offset: np.ndarray  # [n_mels] np.intp: start of each band in `weights`
    weights: np.ndarray  # [sum(n_bins)] float32
    n_fft_bins: int

    @classmethod
    def from_dense(cls, fb: np.ndarray) -> "MelBands":
        """Read the runs off a dense filterbank; refuses empty bands and gaps (not a banded filterbank)."""
        nonzero = fb != 0
        if not nonzero.any(axis=0).all():
            raise SettingsError("the filterbank has an all-zero band (too many mels for n_fft?): it cannot be "
                                "stored as runs of bins")
        first = nonzero.argmax(axis=0)
        last = fb.shape[0] - 1 - nonzero[::-1].argmax(axis=0)
        n_bins = last - first + 1
        if int(nonzero.sum()) != int(n_bins.sum()):
            raise SettingsError("a mel band's non-zero weights are not one run of consecutive bins")
        weights = np.concatenate([fb[lo:lo + n, band] for band, (lo, n) in enumerate(zip(first, n_bins))])
        offset = np.concatenate([np.zeros(1, np.intp), np.cumsum(n_bins)[:-1]])
        # np.intp, not int64: numpy refuses int64 repeat counts and indices where its index type is 32-bit
        # (np.repeat: "Cannot cast array data from dtype('int64') to dtype('int32')", 32-bit Raspberry Pi OS)
        return cls(first.astype(np.intp), n_bins.astype(np.intp), offset.astype(np.intp),
                   weights.astype(np.float32), int(fb.shape[0]))

    @property
    def n_mels(self) -> int:
        return len(self.first_bin)

    def dense(self) -> np.ndarray:
        """The dense filterbank `[n_bins, n_mels]` again."""
        fb = np.zeros((self.n_fft_bins, self.n_mels), np.float32)
        fb[self.bin_index(), np.repeat(np.arange(self.n_mels), self.n_bins)] = self.weights
        return fb

    def bin_index(self) -> np.ndarray:
        """The FFT bin of every entry of `weights`."""
        return np.repeat(self.first_bin - self.offset, self.n_bins) + np.arange(len(self.weights))

    def apply(self, power: np.ndarray) -> np.ndarray:
        """`power [..., n_bins]` -> mel `[..., n_mels]`: each band's weighted run summed (`np.add.reduceat`)."""
        return np.add.reduceat(power[..., self.bin_index()] * self.weights, self.offset, axis=-1)

    def blocks(self, overhead_macs: int) -> list[Block]:
        """Neighbouring bands grouped into dense blocks, minimising total MACs + `overhead_macs` per block.

        Dynamic programming over band boundaries (bands' first and last bins both increase with the band);
        `overhead_macs` prices one more product (slice + matmul + concat), as measured by the caller.
        """
        last = self.first_bin + self.n_bins  # exclusive
        n = self.n_mels
        best = np.full(n + 1, np.inf)
        best[0] = 0.0
        start = np.zeros(n + 1, np.intp)
        for hi in range(1, n + 1):
            lo = np.arange(hi)
            width = np.maximum.accumulate(last[:hi][::-1])[::-1] - self.first_bin[:hi]  # bins of bands lo..hi-1
            cost = best[:hi] + width * (hi - lo) + overhead_macs
            start[hi] = int(np.argmin(cost))
            best[hi] = cost[start[hi]]
        bounds, hi = [], n
        while hi > 0:
            bounds.append((int(start[hi]), hi))
            hi = int(start[hi])
        fb = self.dense()
        out = []
        for lo, hi in reversed(bounds):
            bin_lo, bin_hi = int(self.first_bin[lo]), int(last[lo:hi].max())
            out.append(Block(lo, hi, bin_lo, bin_hi, np.ascontiguousarray(fb[bin_lo:bin_hi, lo:hi])))
        return out

    def nbytes(self, index_bytes: int = 2, offset_bytes: int = 4) -> int:
        """Bytes of the arrays as a firmware stores them (first bin, length, offset per band; float32 weights)."""
        return self.n_mels * (2 * index_bytes + offset_bytes) + 4 * len(self.weights)
