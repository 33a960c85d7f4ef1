"""Audio in for the edge runtime: files of any rate (resampled as the training data), raw PCM streams.

Audio is classified in whole clips (1 s). A remainder shorter than a clip is not classified and a warning
names the file (or the stream) and the length dropped; input without one whole clip is an EdgeError.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from asc_tf.data.audio import AudioFileError, read_wav
from asc_tf.data.resample import resample
from asc_tf.edge.errors import EdgeError

log = logging.getLogger(__name__)

PCM_SCALE = 32768.0  # int16 full scale, as soundfile reads 16-bit PCM


def read_clips(path: str | Path, sample_rate: int, clip_samples: int) -> list[np.ndarray]:
    """A mono audio file resampled to `sample_rate` (the project's resampler) and cut into whole clips."""
    path = Path(path)
    try:  # truncated and empty files are worded as the conversion words them (asc_tf.data.audio.read_wav)
        waveform, rate = read_wav(path)
    except AudioFileError as error:
        raise EdgeError(str(error)) from None
    waveform = resample(waveform, rate, sample_rate)
    if waveform.shape[0] < clip_samples:
        raise EdgeError(f"{path}: {waveform.shape[0] / sample_rate:g} s long, shorter than one clip "
                        f"({clip_samples / sample_rate:g} s): nothing to classify")
    whole = waveform.shape[0] // clip_samples
    _warn_remainder(str(path), waveform.shape[0] - whole * clip_samples, sample_rate, whole)
    return [waveform[k * clip_samples:(k + 1) * clip_samples] for k in range(whole)]


def _warn_remainder(name: str, samples: int, sample_rate: int, clips: int) -> None:
    if samples > 0:
        log.warning("%s: the last %.3f s (%d samples at %d Hz) after %d whole clip(s) are shorter than a clip and "
                    "were not classified", name, samples / sample_rate, samples, sample_rate, clips)


def pcm_clips(stream: BinaryIO, clip_samples: int, sample_rate: int = 32000, name: str = "standard input"
              ) -> Iterator[np.ndarray]:
    """Consecutive clips `[clip_samples]` float32 from raw 16-bit little-endian mono PCM, as they complete.

    Short reads (pipes) are fine; a trailing partial clip is dropped with a warning; a stream without one
    whole clip (empty included) is an EdgeError.
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
        raise EdgeError(f"no audio on {name} (empty stream): expected raw 16-bit mono PCM")
    if received < need:
        raise EdgeError(f"{name}: the stream ended after {received // 2:,} samples, before one whole clip "
                        f"({clip_samples:,} samples, {clip_samples / sample_rate:g} s): nothing to classify")
    _warn_remainder(name, len(buffer) // 2, sample_rate, received // need)
