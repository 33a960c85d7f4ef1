"""Clips per second: the tf.data pipeline over converted shards vs per-file loading as upstream does it.

Per-file loading is what upstream's DataLoader does per item: read the WAV, roll, resample 44.1 -> 32 kHz
(here with the same resampler, in numpy). Both read the same clips (the training split of a synthetic
dataset) in the same run. Per-file loading is measured in one process and in a pool of one process per
core (upstream's workers), so the comparison is fair on this machine.

    python bench/pipeline.py [--dataset_dir D] [--size medium] [--epochs 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load_item(path: str, roll: int) -> np.ndarray:
    """Upstream's per-item work: read, roll at 44.1 kHz, resample."""
    from asc_tf.data.audio import load_clip

    # roll first at 44.1 kHz as upstream; reading + resampling dominate, the roll is a copy
    return np.roll(load_clip(path, 44100, 32000), roll)


def _warm_up(_: int) -> None:
    """Load one clip in a worker and hold it, so every worker is up and warm before timing starts."""
    importlib.import_module("asc_tf.data.audio")

    time.sleep(1.0)


def per_file_rate(paths: list[str], workers: int) -> float:
    """Clips per second of `workers` single-threaded loader processes (as PyTorch DataLoader workers,
    which run with one thread each), timed once every worker is up."""
    from asc_tf.data.convert import single_threaded_children

    rolls = [int(r) for r in np.random.default_rng(0).integers(-4410, 4411, len(paths))]
    with single_threaded_children(), concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm_up, range(workers)))
        start = time.perf_counter()
        list(pool.map(load_item, paths, rolls, chunksize=16))
        return len(paths) / (time.perf_counter() - start)


def pipeline_rate(shards_dir: Path, config, epochs: int) -> tuple[float, float]:
    """(first epoch, later epochs) clips per second of training batches."""
    from asc_tf.data.pipeline import make_dataset

    rates = []
    for epoch in range(epochs):
        dataset = make_dataset(shards_dir, "split100", config, training=True, epoch=epoch)
        start, clips = time.perf_counter(), 0
        for waveform, _ in dataset:
            clips += int(waveform.shape[0])
        rates.append(clips / (time.perf_counter() - start))
    return rates[0], float(np.median(rates[1:])) if len(rates) > 1 else rates[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_dir", help="a TAU-layout dataset (default: a synthetic one in a temp folder)")
    parser.add_argument("--size", default="medium", help="synthetic size when no --dataset_dir (default: medium)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from asc_tf.config import Config
    from asc_tf.data import synthetic
    from asc_tf.data.convert import convert_dataset
    from asc_tf.data.meta import read_meta
    from asc_tf.data.splits import load_splits, resolve_split_dir

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="asc-bench-"))
    dataset_dir = Path(args.dataset_dir) if args.dataset_dir else synthetic.generate(work, 0, args.size)["development"]
    config = Config(dataset_dir=str(dataset_dir), tfrecords_dir=str(work / "tfrecords"), num_workers=os.cpu_count() or 1, seed=0)
    start = time.perf_counter()
    shards_dir = convert_dataset(config, progress=False)
    convert_seconds = time.perf_counter() - start
    splits = load_splits(read_meta(dataset_dir / "meta.csv"), resolve_split_dir(dataset_dir, None))
    paths = [str(dataset_dir / f) for f in splits["split100"]]

    results = {}
    for cache in ("no", "yes"):
        results[f"pipeline, cache={cache}"] = pipeline_rate(shards_dir, config.replace(cache=cache), args.epochs)
    single = per_file_rate(paths, 1)
    pooled = per_file_rate(paths, os.cpu_count() or 1)

    print(f"machine: {machine()}; load average before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"clips: {len(paths)} (training split of {dataset_dir.name}); batch {config.batch_size}; "
          f"conversion took {convert_seconds:.1f} s")
    for name, (first, later) in results.items():
        print(f"{name:28s} {first:9.0f} clips/s first epoch, {later:9.0f} clips/s later epochs")
    print(f"{'per-file, 1 worker':28s} {single:9.0f} clips/s")
    print(f"{f'per-file, {os.cpu_count()} workers':28s} {pooled:9.0f} clips/s")
    uncached = results["pipeline, cache=no"][1]
    cached = results["pipeline, cache=yes"][1]
    for name, rate in (("streamed from shards", uncached), ("in memory", cached)):
        print(f"pipeline {name}: {rate / single:.1f}x per-file (1 worker), "
              f"{rate / pooled:.1f}x per-file ({os.cpu_count()} workers)")


if __name__ == "__main__":
    main()
