"""Affine int8 quantization as TFLite's QUANTIZE and a firmware compute it, in numpy only: the edge runtime
quantizes the network's input with it, and it imports where no TFLite interpreter does (a 32-bit test root)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def round_half_away(x: np.ndarray) -> np.ndarray:
    """C's `roundf` (TFLite's QUANTIZE rounding), not numpy's round-half-to-even; one new buffer, worked in place."""
    q = np.abs(x)
    q += 0.5
    np.floor(q, out=q)
    return np.copysign(q, x, out=q)


@dataclass(frozen=True)
class Quantization:
    """Affine int8 quantization of one tensor: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """int8 `clip(round_half_away(x / scale) + zero_point)`, in place in one float64 buffer (a third of the
        time of the plain expression on a log-mel; same values)."""
        q = round_half_away(np.asarray(x, dtype=np.float64) / self.scale)
        q += self.zero_point
        np.clip(q, -128, 127, out=q)
        return q.astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, dtype=np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)
