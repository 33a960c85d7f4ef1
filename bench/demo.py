"""How long `python train.py --demo` takes from nothing (target: under 5 minutes on 2 cores), phase by phase.

Each run starts the demo in an empty temporary directory, so it makes the dataset, converts it, trains,
evaluates and closes W&B (offline) exactly as a fresh clone does; the phases are read from the demo's own
lines, timestamped as they arrive. Prints the machine, the load average before each run, one line per run
and the printed accuracy (identical across runs: the demo is deterministic for its seed).

    python bench/demo.py [--runs 2] [--json FILE]
    python bench/demo.py --seeds 0 1 2 [--json FILE]   # one run per seed: the spread of the printed accuracy

The accuracy is deterministic per machine (same CPU: identical every run) but not across CPUs (oneDNN picks
other kernels on another CPU): its spread over seeds is what another machine's figure is to be compared with.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pipeline import machine  # noqa: E402
from bench.timing import cpu_seconds  # noqa: E402

# (phase, the demo line that ends it); a phase whose line is absent is merged into the next one
PHASES = (("start", r"making the synthetic dataset"), ("make dataset", r"^synthetic dataset:"),
          ("convert", r"^converted "), ("prepare run", r"^training \d+ epoch"),
          ("first epoch", r"^epoch 1/\d+: loss"), ("training", r"^epoch (\d+)/\1: loss"),
          ("last validation", r"^epoch (\d+)/\1: val/"), ("final evaluation", r"^report written"))
VALIDATION = re.compile(r"^epoch \d+/\d+: val/")
ACCURACY = re.compile(r"macro average accuracy: .*")


def run_demo(work: Path, seed: Optional[int] = None) -> dict:
    """One demo in `work` (with `--seed seed` when given): wall seconds per phase, total wall and CPU seconds, the
    printed accuracy line."""
    env = dict(os.environ, WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    start, cpu = time.perf_counter(), cpu_seconds()
    marks: dict[str, float] = {}
    validations, accuracy = 0, ""
    command = [sys.executable, str(REPO / "train.py"), "--demo"] + ([] if seed is None else ["--seed", str(seed)])
    with subprocess.Popen(command, cwd=work, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as demo:
        for line in demo.stdout:  # type: ignore[union-attr]
            now, line = time.perf_counter() - start, line.strip()
            for phase, pattern in PHASES:
                if phase not in marks and re.search(pattern, line):
                    marks[phase] = now
            validations += bool(VALIDATION.search(line))
            printed = ACCURACY.search(line)
            accuracy = printed.group(0) if printed else accuracy
        code = demo.wait()
    total, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if code != 0:
        raise RuntimeError(f"train.py --demo exited with {code} in {work}")
    phases, previous = {}, 0.0
    for phase, _ in PHASES:
        if phase in marks:
            phases[phase] = round(marks[phase] - previous, 1)
            previous = marks[phase]
    phases["close (W&B, exit)"] = round(total - previous, 1)
    return {"wall_s": round(total, 1), "cpu_s": round(cpu, 1), "phases_s": phases, "validations": validations,
            "printed": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="demos run one after the other")
    parser.add_argument("--seeds", type=int, nargs="+", help="one run per seed (instead of --runs of seed 0)")
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    runs = []
    for index, seed in enumerate(args.seeds or [None] * args.runs):
        load, started = os.getloadavg()[0], time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        with tempfile.TemporaryDirectory(prefix="asc_tf_demo_") as work:
            result = run_demo(Path(work), seed)
        result.update(load_before=round(load, 2), started=started, seed=0 if seed is None else seed)
        runs.append(result)
        phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result["phases_s"].items())
        print(f"run {index + 1}: {result['wall_s']:.1f} s wall ({result['cpu_s']:.0f} s CPU, load {load:.2f} "
              f"before; target 300 s): {phases}")
        print(f"  seed {result['seed']} printed: {result['printed']}")
    accuracies = [float(m.group(1)) for r in runs if (m := re.search(r"accuracy: ([0-9.]+)", r["printed"]))]
    if len(accuracies) > 1:
        print(f"macro accuracy over {len(accuracies)} runs: mean {statistics.mean(accuracies):.4f}, s.d. "
              f"{statistics.stdev(accuracies):.4f}, range {min(accuracies):.4f}-{max(accuracies):.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
