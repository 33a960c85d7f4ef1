"""Reading TAU clips: soundfile (24-bit PCM), checks, and upstream's resampling. No TensorFlow here, so
conversion worker processes start fast."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from asc_tf.data.errors import AudioFileError
from asc_tf.data.resample import RateError, resample


def wav_truncation(path: Path) -> str | None:
    """Why a RIFF/WAVE file is truncated (its data chunk claims more bytes than the file has), else None.

    Hand-written because libsndfile reads a truncated WAV silently, returning the samples that are there.
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not a WAV: soundfile decides
        size = path.stat().st_size
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk, length = struct.unpack("<4sI", handle.read(8))
            if chunk == b"data":
                missing = position + 8 + length - size
                return f"truncated: the data chunk needs {missing:,} more bytes" if missing > 0 else None
            position += 8 + length + (length & 1)
        return "truncated: no complete data chunk"


def read_wav(path: str | Path, expected_sr: Optional[int] = None, expected_samples: Optional[int] = None) -> tuple[np.ndarray, int]:
    """Read a mono WAV as float32 in [-1, 1]; check sample rate and length when expected values are given.
    Truncated and empty files are refused in the same words for every reader (conversion, prediction, edge)."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: file not found")
    problem = wav_truncation(path)
    if problem:
        raise AudioFileError(f"{path}: {problem}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise AudioFileError(f"{path}: cannot read audio ({error})") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: empty: no samples")
    if data.shape[1] != 1:
        raise AudioFileError(f"{path}: {data.shape[1]} channels, expected mono")
    if expected_sr is not None and sr != expected_sr:
        raise AudioFileError(f"{path}: sample rate {sr} Hz, expected {expected_sr} Hz")
    if expected_samples is not None and data.shape[0] != expected_samples:
        raise AudioFileError(f"{path}: {data.shape[0]} samples, expected {expected_samples} ({expected_samples / sr:g} s)")
    if not np.isfinite(data).all():
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    return data[:, 0], sr


def load_clip(path: str | Path, orig_sr: int, target_sr: int, seconds: float = 1.0) -> np.ndarray:
    """A dataset clip: read, check (mono, `orig_sr`, `seconds` long) and resample to `target_sr`."""
    waveform, _ = read_wav(path, expected_sr=orig_sr, expected_samples=int(round(orig_sr * seconds)))
    return _resampled(path, waveform, orig_sr, target_sr)


def load_any_clip(path: str | Path, target_sr: int) -> np.ndarray:
    """A clip of any sample rate, resampled to `target_sr` (evaluation sets, user files)."""
    waveform, sr = read_wav(path)
    return _resampled(path, waveform, sr, target_sr)


def _resampled(path: str | Path, waveform: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """`resample`, with a rate pair it refuses named as the file's fault."""
    try:
        return resample(waveform, orig_sr, target_sr)
    except RateError as error:
        raise AudioFileError(f"{path}: {error}") from None
