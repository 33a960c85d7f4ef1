"""Wall time of the refusals that need no TensorFlow (issue 24: goal under 1 s each): a mistyped run id, a run
killed before its first checkpoint, a missing model or checkpoint file, an existing bundle, for train.py
(--resume, --evaluate), export_tflite.py, predict.py and `python -m asc_tf.torch_import`. Each command runs
`--repeat` times in a fresh interpreter; the medians of its wall time (what a user waits for) and of its CPU time
(user + system: what it costs, nearly independent of the load) are printed with the machine and the load.

    python bench/refusals.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pipeline import machine  # noqa: E402
from bench.timing import cpu_seconds  # noqa: E402


def make_project(root: Path) -> Path:
    """A project folder with run `early` (config.json, no checkpoint: killed in its first epoch), run `done`
    (a stand-in last.keras and model.keras, never loaded: every case is refused before), an export bundle
    `exports/done_int8`, an existing `taken.keras`, and a stand-in upstream checkpoint `upstream.ckpt`."""
    from asc_tf.config import Config

    project = root / "project"
    config = json.dumps(Config(project_dir=str(project), dataset_dir=str(root / "no_dataset")).to_dict())
    for run_id in ("early", "done"):
        (project / "DCASE24_Task1" / run_id / "checkpoints").mkdir(parents=True)
        (project / "DCASE24_Task1" / run_id / "config.json").write_text(config)
    for name in ("checkpoints/last.keras", "model.keras"):
        (project / "DCASE24_Task1" / "done" / name).write_bytes(b"not loaded")
    (project / "exports" / "done_int8").mkdir(parents=True)
    (project / "exports" / "done_int8" / "manifest.json").write_text("{}")
    (root / "taken.keras").write_bytes(b"exists")
    (root / "upstream.ckpt").write_bytes(b"exists")
    return project


def refusal_cases(root: Path) -> list[tuple[str, list[str], str]]:
    """(name, command line, what the one-line error says) of each refusal, for the project `make_project` made."""
    project = str(root / "project")
    train, export, predict = (str(REPO / name) for name in ("train.py", "export_tflite.py", "predict.py"))
    where = ["--project_dir", project]
    return [
        ("train.py --resume unknown id", [train, "--resume", "nope", *where], "unknown run id 'nope'"),
        ("train.py --resume no checkpoint", [train, "--resume", "early", *where], "stopped before its first epoch"),
        ("train.py --evaluate unknown id", [train, "--evaluate", "--ckpt_id", "nope", *where], "unknown run id"),
        ("train.py --evaluate no checkpoint", [train, "--evaluate", "--ckpt_id", "early", *where],
         "stopped before its first epoch"),
        ("export_tflite.py unknown id", [export, "--ckpt_id", "nope", *where], "unknown run id"),
        ("export_tflite.py no checkpoint", [export, "--ckpt_id", "early", *where], "no completed epoch"),
        ("export_tflite.py missing .keras", [export, "--ckpt_id", str(root / "missing.keras"), *where],
         "does not exist"),
        ("export_tflite.py existing bundle", [export, "--ckpt_id", "done", *where], "pass --overwrite"),
        ("predict.py unknown id", [predict, "--ckpt_id", "nope", *where], "unknown run id"),
        ("predict.py no checkpoint", [predict, "--ckpt_id", "early", *where], "stopped before its first epoch"),
        ("predict.py missing .keras", [predict, "--model", str(root / "missing.keras"), *where], "model file not found"),
        ("predict.py no evaluation set", [predict, "--ckpt_id", "done", *where], "no evaluation file list"),
        ("predict.py --tflite missing bundle", [predict, "--tflite", str(root / "no_bundle"), *where], "no_bundle"),
        ("torch_import missing file", ["-m", "asc_tf.torch_import", str(root / "missing.ckpt"), "--out",
                                       str(root / "x.keras")], "does not exist"),
        ("torch_import existing --out", ["-m", "asc_tf.torch_import", str(root / "upstream.ckpt"), "--out",
                                         str(root / "taken.keras")], "pass --overwrite"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (the median is printed)")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    slowest = 0.0
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root)
        for name, argv, expected in refusal_cases(root):
            times, cpu = [], []
            for _ in range(args.repeat):
                started, cpu_before = time.perf_counter(), cpu_seconds()
                result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=root,
                                        env={**os.environ, "PYTHONPATH": str(REPO)})
                times.append(time.perf_counter() - started)
                cpu.append(cpu_seconds() - cpu_before)
            ok = result.returncode == 2 and expected in result.stderr and len(result.stderr.splitlines()) == 1
            slowest = max(slowest, statistics.median(times))
            print(f"{statistics.median(times):6.2f} s wall {statistics.median(cpu):5.2f} s CPU  {name}" + ("" if ok else f"  UNEXPECTED: exit "
                  f"{result.returncode}, {result.stderr.strip()[-300:]!r}"), flush=True)
    print(f"slowest {slowest:.2f} s (goal < 1 s); load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
