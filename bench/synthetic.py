"""How long making the synthetic dataset takes (target: `medium` under 60 s on 2 cores), wall and CPU time,
with the load average so a busy machine is visible in the figure.

    python bench/synthetic.py [--size medium] [--difficulty tau] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import cpu_seconds  # noqa: E402


def main() -> None:
    from asc_tf.data import synthetic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="medium", choices=sorted(synthetic.SIZES))
    parser.add_argument("--difficulty", default="tau", choices=synthetic.DIFFICULTIES)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        start, cpu = time.perf_counter(), cpu_seconds()
        paths = synthetic.generate(work, 0, args.size, args.difficulty, workers=args.workers)
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        clips = sum(1 for _ in paths["development"].glob("audio/*.wav")) + sum(
            1 for _ in paths["evaluation"].glob("audio/*.wav"))
    print(f"{args.size} ({args.difficulty}): {clips} clips in {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
