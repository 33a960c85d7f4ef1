"""Resampling 44.1 -> 32 kHz per clip, and TFRecord conversion clips/s: upstream's dense polyphase product
("before", kept here as the reference) against the banded one `asc_tf.data.resample` ships ("after").

Per clip: median wall time and median CPU time of the calling thread (CPU time is what the clip costs; wall
time on a shared machine also holds waits for the other processes). Conversion: a synthetic dataset converted
in this process (one worker, so both resamplers run in the same process), after a warm-up conversion, twice with
each resampler (interleaved, best kept).

    python bench/resample.py [--clips 300] [--size small]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the conversion loads TensorFlow: no INFO lines

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402
from bench.timing import per_clip_ms  # noqa: E402


_THREADPOOLS = None


def dense_resample(waveform: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """The resampler before the banded one: upstream's conv1d as one dense product `frames @ kernel.T`, with
    BLAS held to one thread by a module-level threadpoolctl controller, as it shipped."""
    global _THREADPOOLS
    from threadpoolctl import ThreadpoolController

    from asc_tf.data.resample import sinc_kernel

    _THREADPOOLS = _THREADPOOLS or ThreadpoolController()

    x = np.asarray(waveform, dtype=np.float32)
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    kernel, width = sinc_kernel(orig, new)
    flat = x.reshape(-1, x.shape[-1])
    padded = np.pad(flat, ((0, 0), (width, width + orig)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1], axis=-1)[:, ::orig]
    with _THREADPOOLS.limit(limits=1, user_api="blas"):
        out = (frames @ kernel.T).reshape(flat.shape[0], -1)
    target = math.ceil(new * x.shape[-1] / orig)
    return np.ascontiguousarray(out[:, :target]).reshape(*x.shape[:-1], target)



def conversion_rate(dataset_dir: Path, out: Path, resampler) -> tuple[float, int]:
    """(clips/s, clips) of a whole in-process conversion with `resampler` in place of the shipped one."""
    from asc_tf.config import Config
    from asc_tf.data import audio
    from asc_tf.data.convert import convert_dataset
    from asc_tf.data.meta import read_meta

    config = Config(dataset_dir=str(dataset_dir), tfrecords_dir=str(out), num_workers=1, seed=0)
    clips = len(read_meta(dataset_dir / "meta.csv"))
    with mock.patch.object(audio, "resample", resampler):
        start = time.perf_counter()
        convert_dataset(config, progress=False)
        return clips / (time.perf_counter() - start), clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--size", default="small", help="synthetic dataset size for the conversion")
    args = parser.parse_args()

    from asc_tf.data import synthetic
    from asc_tf.data.resample import resample

    load_before = os.getloadavg()[0]
    clips = list(np.random.default_rng(0).uniform(-0.5, 0.5, (args.clips, 44100)).astype(np.float32))
    worst = max(float(np.abs(resample(c, 44100, 32000) - dense_resample(c, 44100, 32000)).max()) for c in clips[:20])
    timings = {}
    for name, fn in (("dense (before)", dense_resample), ("banded (after)", resample)) * 2:  # twice, interleaved
        timings.setdefault(name, []).append(per_clip_ms(lambda c: fn(c, 44100, 32000), clips))
    work = Path(tempfile.mkdtemp(prefix="asc-bench-resample-"))
    dataset_dir = synthetic.generate(work, 0, args.size)["development"]
    conversion_rate(dataset_dir, work / "warm-up", resample)  # loads TensorFlow, reads the files into the cache
    rates: dict[str, tuple[float, int]] = {}
    for round_ in range(2):  # interleaved, best of two
        for name, fn in (("dense (before)", dense_resample), ("banded (after)", resample)):
            rate = conversion_rate(dataset_dir, work / f"{name.split()[0]}-{round_}", fn)
            rates[name] = max(rates.get(name, rate), rate)

    print(f"machine: {machine()}; load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"resample 44.1 -> 32 kHz, 1 s clip, median of {args.clips} clips (best of 2 interleaved runs):")
    for name, runs in timings.items():
        wall, cpu = min(runs)
        print(f"  {name:16s} {wall:6.3f} ms wall, {cpu:6.3f} ms CPU per clip")
    (dw, dc), (bw, bc) = min(timings["dense (before)"]), min(timings["banded (after)"])
    print(f"  speed-up {dw / bw:.1f}x wall, {dc / bc:.1f}x CPU; max |banded - dense| {worst:.1e} on 20 clips")
    clip_count = next(iter(rates.values()))[1]
    print(f"conversion of synthetic {args.size} ({clip_count} clips, 1 worker, in process, best of 2):")
    for name, (rate, _) in rates.items():
        print(f"  {name:16s} {rate:7.0f} clips/s")


if __name__ == "__main__":
    main()
