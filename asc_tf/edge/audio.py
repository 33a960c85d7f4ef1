"""Audio in for the edge runtime: files of any rate (resampled as the training data), raw PCM streams."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from asc_tf.data.audio import AudioFileError, read_wav
from asc_tf.data.resample import resample
from asc_tf.edge.errors import EdgeError

PCM_SCALE = 32768.0  # int16 full scale, as soundfile reads 16-bit PCM


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


def read_clips(path: str | Path, sample_rate: int, clip_samples: int) -> list[np.ndarray]:
    """A mono audio file resampled to `sample_rate` (the project's resampler) and cut into whole clips."""
    path = Path(path)
    if path.is_file():
        problem = wav_truncation(path)
        if problem:
            raise EdgeError(f"{path}: {problem}")
    try:
        waveform, rate = read_wav(path)
    except AudioFileError as error:
        raise EdgeError(str(error)) from None
    waveform = resample(waveform, rate, sample_rate)
    if waveform.shape[0] < clip_samples:
        raise EdgeError(f"{path}: {waveform.shape[0] / sample_rate:g} s long, shorter than one clip "
                        f"({clip_samples / sample_rate:g} s)")
    return [waveform[start:start + clip_samples] for start in range(0, waveform.shape[0] - clip_samples + 1,
                                                                     clip_samples)]


def pcm_clips(stream: BinaryIO, clip_samples: int) -> Iterator[np.ndarray]:
    """Consecutive clips `[clip_samples]` float32 from raw 16-bit little-endian mono PCM, as they complete.

    Short reads (pipes) are fine; a trailing partial clip is dropped; an empty stream is an EdgeError.
    """
    need = 2 * clip_samples
    buffer = bytearray()
    received = 0
    while True:
        chunk = stream.read(need - len(buffer))
        if not chunk:
            break
        received += len(chunk)
        buffer += chunk
        if len(buffer) == need:
            yield np.frombuffer(bytes(buffer), dtype="<i2").astype(np.float32) / np.float32(PCM_SCALE)
            buffer.clear()
    if received == 0:
        raise EdgeError("no audio on standard input (empty stream): expected raw 16-bit mono PCM")
    if received < need:
        raise EdgeError(f"the stream ended after {received // 2:,} samples, before one whole clip "
                        f"({clip_samples:,} samples)")
