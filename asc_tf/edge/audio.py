"""Audio in for the edge runtime: files of any rate (resampled as the training data), raw PCM streams.

Audio is classified in whole clips (1 s). A remainder shorter than a clip is not classified and a warning
names the file (or the stream) and the length dropped; input without one whole clip is an EdgeError.

    python -m asc_tf.edge.audio IN.wav... --out DIR   the clips the firmware reads, from dataset clips or any
                                                     mono file: 16-bit PCM, 32 kHz, 32,000 samples per file
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Sequence

import numpy as np

from asc_tf.data.audio import AudioFileError, read_wav
from asc_tf.data.resample import RateError, resample
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
    try:
        waveform = resample(waveform, rate, sample_rate)
    except RateError as error:
        raise EdgeError(f"{path}: {error}") from None
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


def to_pcm16(clip: np.ndarray) -> np.ndarray:
    """A float clip (full scale 1.0) as 16-bit PCM samples, rounded and clipped (what the firmware reads)."""
    return np.clip(np.round(np.asarray(clip, np.float64) * PCM_SCALE), -32768, 32767).astype(np.int16)


def write_pcm16_wav(path: Path, clip: np.ndarray, sample_rate: int) -> None:
    """`clip` as a 16-bit PCM mono WAV at `path`, atomically."""
    import soundfile as sf

    from asc_tf.io import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), to_pcm16(clip), sample_rate, subtype="PCM_16", format="WAV")


def firmware_clip_files(sources: Sequence[str | Path], out_dir: Path, sample_rate: int = 32000,
                        clip_samples: int = 32000, overwrite: bool = False) -> list[Path]:
    """Each source resampled (the project's resampler) and cut into whole clips, written as `out_dir/<stem>.wav`
    (`<stem>_<k>.wav` for the k-th second of a longer file); an existing file is replaced only with `overwrite`."""
    taken = [path for source in sources for path in
             (out_dir / f"{Path(source).stem}.wav", *sorted(out_dir.glob(f"{Path(source).stem}_[0-9]*.wav")))
             if path.exists()]
    if taken and not overwrite:
        raise EdgeError(f"{taken[0]} exists" + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else "")
                        + ": pass --overwrite to replace, or choose another --out")
    planned: list[tuple[Path, np.ndarray]] = []
    for source in sources:
        clips = read_clips(source, sample_rate, clip_samples)
        stem = Path(source).stem
        names = [f"{stem}.wav"] if len(clips) == 1 else [f"{stem}_{k}.wav" for k in range(len(clips))]
        planned += [(out_dir / name, clip) for name, clip in zip(names, clips)]
    for path, clip in planned:  # every input is read and checked before anything is written
        write_pcm16_wav(path, clip, sample_rate)
    return [path for path, _ in planned]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.edge.audio",
                                     description="Make the clips the firmware reads (16-bit PCM WAV, mono, 32 kHz, "
                                     "32,000 samples) from dataset clips or any mono audio file.")
    parser.add_argument("sources", nargs="+", type=Path, help="mono audio files of any sample rate (e.g. a "
                        "dataset's 44.1 kHz clips); each whole second becomes one clip")
    parser.add_argument("--out", type=Path, required=True, help="folder for the clips (<name>.wav, or "
                        "<name>_<k>.wav for the k-th second of a longer file)")
    parser.add_argument("--overwrite", action="store_true", help="replace clips already in --out")
    args = parser.parse_args(argv)
    from asc_tf import console

    console.setup()  # a dropped remainder as one `warning:` line
    try:
        written = firmware_clip_files(args.sources, args.out, overwrite=args.overwrite)
    except EdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(written)} clip(s) in {args.out}: " + " ".join(path.name for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
