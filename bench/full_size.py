"""Full-size rehearsal: generate a synthetic set with the real development set's counts and proportions, convert
it (killed once mid-way and resumed), train one epoch of split 100 (streamed) and of split 25 (in memory),
and evaluate the test split; per phase the wall time, clips/s, peak RSS and disk.

Each phase runs in its own process, so its peak RSS (ru_maxrss of the process and its children) is its own.
Splits are forced to stream (--cache no) or stay in memory (--cache yes), as the real set's split 100
(139,620 clips > cache_max_clips) and split 25 would, whatever the size rehearsed.

    nice -n 10 python bench/full_size.py --clips 2000 [--work DIR] [--out results.json]
    nice -n 10 python bench/full_size.py --size full        # 169,300 clips: ~22 GB of WAV + 11 GB of shards
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WARMUP_BATCHES = 3  # steady-state rates leave out the first batches (tracing, XLA compilation, first reads)


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def peak_rss_mb() -> float:
    """Peak RSS of this process and (separately) of its largest child, in MB (Linux: ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _config(work: Path, **changes: Any):
    from asc_tf.config import Config
    from asc_tf.data.synthetic import DEV_DIR_NAME

    return Config(dataset_dir=str(work / "data" / DEV_DIR_NAME), tfrecords_dir=str(work / "tfrecords"), seed=0,
                  wandb="disabled", num_workers=2, **changes)


# ------------------------------------------------------------------------------------------------ phases
def phase_generate(work: Path, args: argparse.Namespace) -> dict:
    from asc_tf.data import synthetic

    counts = synthetic.TAU_FULL if args.size == "full" else synthetic.TauCounts.scaled(args.clips)
    started = time.perf_counter()
    synthetic.generate(work / "data", seed=0, size=counts)
    wall = time.perf_counter() - started
    clips = sum(1 for _ in (work / "data" / synthetic.DEV_DIR_NAME / "audio").iterdir())  # train + test
    return {"wall_s": wall, "clips": clips, "clips_per_s": clips / wall, "disk_bytes": disk_bytes(work / "data")}


def phase_convert(work: Path, args: argparse.Namespace) -> dict:
    from asc_tf.data.convert import convert_dataset, converted_dir

    progress = converted_dir(_config(work)) / "conversion.json"
    kept = json.loads(progress.read_text())["done"] if progress.exists() else {}  # shards of an earlier attempt
    started = time.perf_counter()
    out = convert_dataset(_config(work), progress=False)
    wall = time.perf_counter() - started
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    entries = [e for tier in manifest.get("tiers", {}).values() for e in tier["shards"]]
    kept_same = all(e["sha256"] == kept[e["file"]]["sha256"] for e in entries if e["file"] in kept)
    converted = sum(e["clips"] for e in entries if e["file"] not in kept)
    return {"wall_s": wall, "splits": manifest.get("splits", {}), "disk_bytes": disk_bytes(out),
            "shards_kept": len(kept), "kept_shards_unchanged": kept_same, "clips_converted": converted,
            "clips_per_s": converted / wall}


def _shards_dir(work: Path) -> Path:
    from asc_tf.data.convert import converted_dir

    return converted_dir(_config(work))


class _Timer:
    """Batch timestamps of one epoch, for the steady-state rate."""

    def __init__(self) -> None:
        self.times: list[float] = []


def phase_train(work: Path, args: argparse.Namespace) -> dict:
    """One epoch of upstream's recipe (batch 256) on `args.split`, streamed or in memory (args.cache)."""
    import keras

    from asc_tf.data.pipeline import make_dataset, split_shards
    from asc_tf.model import build_model
    from asc_tf.training.schedule import total_steps
    from asc_tf.training.trainer import compile_model, reseed_layers

    config = _config(work, subset=args.split, cache=args.cache)
    shards = _shards_dir(work)
    _, clips, _ = split_shards(shards, f"split{args.split}", verify="size")
    keras.utils.set_random_seed(0)
    model = build_model(config)
    compile_model(model, config, total_steps(150, clips, config.batch_size))
    reseed_layers(model, 0, 0)
    timer = _Timer()
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: timer.times.append(
        time.perf_counter()))
    # the input pipeline alone first: a first pass (an in-memory split is read into memory here), then a second
    rates = []
    for epoch in (1, 2):
        started = time.perf_counter()
        seen = sum(int(x.shape[0]) for x, _ in make_dataset(shards, f"split{args.split}", config, training=True,
                                                             epoch=epoch))
        rates.append(seen / (time.perf_counter() - started))
    started = time.perf_counter()
    model.fit(make_dataset(shards, f"split{args.split}", config, training=True, epoch=0), epochs=1, verbose=0,
              callbacks=[callback], shuffle=False)
    wall = time.perf_counter() - started
    steady = None
    if len(timer.times) > WARMUP_BATCHES + 1:
        steady_clips = (len(timer.times) - 1 - WARMUP_BATCHES) * config.batch_size
        steady = steady_clips / (timer.times[-2] - timer.times[WARMUP_BATCHES - 1])  # last batch may be partial
    return {"split": args.split, "cache": args.cache, "clips": clips, "wall_s": wall, "clips_per_s": clips / wall,
            "steady_clips_per_s": steady, "pipeline_first_pass_clips_per_s": rates[0],
            "pipeline_clips_per_s": rates[1], "batches": len(timer.times)}


def phase_evaluate(work: Path, args: argparse.Namespace) -> dict:
    """Upstream's evaluation of the test split (float32) with an untrained network: the data path and memory."""
    from asc_tf.data.pipeline import split_shards
    from asc_tf.model import build_model
    from asc_tf.training.evaluation import evaluate

    config = _config(work, cache=args.cache)
    shards = _shards_dir(work)
    _, clips, _ = split_shards(shards, "test", verify="size")
    model = build_model(config)
    started = time.perf_counter()
    evaluate(model, shards, config, "float32")
    wall = time.perf_counter() - started
    return {"clips": clips, "cache": args.cache, "wall_s": wall, "clips_per_s": clips / wall}


def phase_verify(work: Path, args: argparse.Namespace) -> dict:
    """sha256 of every shard against the manifest (what `convert --verify` does)."""
    from asc_tf.data.convert import missing_or_damaged

    shards = _shards_dir(work)
    started = time.perf_counter()
    problems = missing_or_damaged(shards, json.loads((shards / "manifest.json").read_text()), full=True)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "problems": problems, "bytes_per_s": disk_bytes(shards) / wall}


PHASES = {"generate": phase_generate, "convert": phase_convert, "train": phase_train, "evaluate": phase_evaluate,
          "verify": phase_verify}


# ------------------------------------------------------------------------------------------------ driver
def run_phase(name: str, work: Path, extra: list[str], kill_after_shards: int = 0) -> dict:
    """Run a phase in a child process; its last stdout line is the phase's JSON. With `kill_after_shards`, the
    child is killed (SIGKILL) once that many shards are recorded as done."""
    command = [sys.executable, __file__, "--phase", name, "--work", str(work), *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    load = os.getloadavg()[0]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                             start_new_session=True)
    if kill_after_shards:
        progress = next(iter((work / "tfrecords").glob("*/conversion.json")), None)
        while child.poll() is None:
            progress = progress or next(iter((work / "tfrecords").glob("*/conversion.json")), None)
            try:
                done = len(json.loads(progress.read_text())["done"]) if progress else 0
            except (OSError, ValueError):
                done = 0
            if done >= kill_after_shards:
                os.killpg(child.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
    out, _ = child.communicate()
    if kill_after_shards:
        progress = next(iter((work / "tfrecords").glob("*/conversion.json")), None)
        done = len(json.loads(progress.read_text())["done"]) if progress else None
        result = {"killed_with_shards_done": done, "load_1min_before": load}
        print(f"{name:9s} killed (SIGKILL) {json.dumps(result)}", flush=True)
        return result
    if child.returncode != 0:
        raise SystemExit(f"phase {name} failed (exit {child.returncode}): {command}")
    result = json.loads(out.strip().splitlines()[-1])
    result["load_1min_before"] = load
    print(f"{name:9s} {json.dumps(result)}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2000, help="about N train + test clips (default 2000)")
    parser.add_argument("--size", choices=("full",), default=None, help="full: the real set's 169,300 clips")
    parser.add_argument("--work", default=None, help="working folder (default: a new one in /tmp); kept with --keep")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and shards")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--split", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="no", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # child: one phase, one JSON line
        result = PHASES[args.phase](Path(args.work), args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0
    import tempfile

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="asc_tf_full_size_"))
    size = ["--size", "full"] if args.size else ["--clips", str(args.clips)]
    results: dict[str, Any] = {"machine": machine(), "size": args.size or args.clips, "work": str(work),
                               "nice": os.nice(0)}
    print(f"full-size rehearsal ({results['size']} clips) in {work} on {results['machine']}", flush=True)
    try:
        results["generate"] = run_phase("generate", work, size)
        # conversion killed once after a third of the shards, then resumed to the end
        shards_total = max(3, results["generate"]["clips"] // 512)
        results["convert_killed"] = run_phase("convert", work, size, kill_after_shards=max(1, shards_total // 3))
        results["convert_resumed"] = run_phase("convert", work, size)
        results["verify"] = run_phase("verify", work, size)
        results["train_split100_streamed"] = run_phase("train", work, [*size, "--split", "100", "--cache", "no"])
        results["train_split100_in_memory"] = run_phase("train", work, [*size, "--split", "100", "--cache", "yes"])
        results["train_split25_in_memory"] = run_phase("train", work, [*size, "--split", "25", "--cache", "yes"])
        results["evaluate_test_streamed"] = run_phase("evaluate", work, [*size, "--cache", "no"])
        results["evaluate_test_in_memory"] = run_phase("evaluate", work, [*size, "--cache", "yes"])
    finally:
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
