"""Multi-run experiments on the demo recipe: data efficiency (splits 5-100 %) and Freq-MixStyle on/off.

Every run is a normal run folder (`<project_dir>/<project_name>/<run_id>/`). A run is found again by its
configuration (config.json equal to the planned one): finished runs (with info.json) are skipped, runs
with a checkpoint are resumed, so an interrupted experiment continues where it stopped, and runs that two
experiments share (split 100, mixstyle_p 0.4) are trained once.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from asc_tf.config import Config
from asc_tf.data.meta import DEVICE_GROUPS, DEVICES
from asc_tf.io import atomic_write_text
from asc_tf.training.report import (GROUP_COLOURS, RunResult, _save, aggregate, aggregate_markdown, format_mean_std,
                                    load_run, markdown_table)
from asc_tf.training.runs import Run, runs_root

log = logging.getLogger(__name__)

SPLITS = (5, 10, 25, 50, 100)
MIXSTYLE_ARMS = (0.4, 0.0)
EXPERIMENTS = ("data_efficiency", "mixstyle")
# Where/how a run executes or was asked for, not what it is (`train.py --demo`'s run is the experiments' seed 0).
_RUN_ONLY = ("resume", "wandb", "project_dir", "num_workers", "verbose", "demo")


def plan(experiment: str, base: Config, seeds: Sequence[int], splits: Sequence[int] = SPLITS) -> list[Config]:
    """The configurations of an experiment: splits x seeds, or mixstyle arms x seeds (split 100)."""
    if experiment == "data_efficiency":
        return [base.replace(subset=subset, seed=seed) for seed in seeds for subset in splits]
    if experiment == "mixstyle":
        return [base.replace(subset=100, mixstyle_p=p, seed=seed) for seed in seeds for p in MIXSTYLE_ARMS]
    raise ValueError(f"unknown experiment {experiment!r}: choose one of {', '.join(EXPERIMENTS)}")


def _identity(config: Config | Mapping) -> dict:
    values = json.loads(json.dumps(config.to_dict() if isinstance(config, Config) else dict(config)))
    return {k: v for k, v in values.items() if k not in _RUN_ONLY}


def find_run(config: Config) -> Optional[Run]:
    """The run of this configuration: the finished one if any, else the one furthest along (a checkpoint)."""
    root = runs_root(config)
    if not root.is_dir():
        return None
    wanted, best = _identity(config), None
    for path in sorted(root.iterdir()):
        try:
            saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _identity(saved) != wanted:
            continue
        run = Run(path)
        if (path / "info.json").is_file():
            return run
        if run.last_checkpoint.is_file() and best is None:
            best = run
    return best


def is_finished(run: Optional[Run]) -> bool:
    return run is not None and (run.path / "info.json").is_file()


def run_all(configs: Sequence[Config], train: Optional[Callable[[Config], object]]) -> list[Run]:
    """Train what is missing (resuming what was interrupted); returns the finished runs in plan order.
    Without `train`, only the finished runs are returned (a report of an experiment still running)."""
    done = []
    for index, config in enumerate(configs, start=1):
        what = f"[{index}/{len(configs)}] split {config.subset}, seed {config.seed}, mixstyle_p {config.mixstyle_p}"
        run = find_run(config)
        if is_finished(run):
            log.info("%s: finished run %s, skipped", what, run.run_id)
        elif train is None:
            log.info("%s: not finished yet, left out", what)
            continue
        elif run is not None:
            log.info("%s: resuming run %s", what, run.run_id)
            train(config.replace(resume=run.run_id))
        else:
            log.info("%s: training", what)
            train(config)
        run = find_run(config)
        if not is_finished(run):
            raise RuntimeError(f"{what}: training ended without an evaluation (no info.json in {runs_root(config)})")
        done.append(run)
    return done


# ----------------------------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class Report:
    markdown: str
    summary: pd.DataFrame  # one row per split or arm: runs, mean and std of the headline accuracies (%)


def _results(runs: Sequence[Run], labels: Sequence[str]) -> list[RunResult]:
    return [replace(load_run(run.path), split=label) for run, label in zip(runs, labels)]


def _summary(results: Sequence[RunResult]) -> pd.DataFrame:
    columns = {"macro_avg_acc": "macro", "acc.a": "device A", "acc.seen": "seen", "acc.unseen": "unseen"}
    mean, std, size = aggregate(results, columns)
    out = pd.DataFrame({"runs": size})
    for title in columns.values():
        out[f"{title} mean"], out[f"{title} std"] = mean[title], std[title]
    return out


def _summary_markdown(summary: pd.DataFrame, index_name: str) -> str:
    titles = [c[:-5] for c in summary.columns if c.endswith(" mean")]
    cells = pd.DataFrame({"Runs": summary["runs"].astype(str),
                          **{t.title() if t != "device A" else "Device A":
                             [format_mean_std(m, s) for m, s in zip(summary[f"{t} mean"], summary[f"{t} std"])]
                             for t in titles}}, index=summary.index)
    return markdown_table(cells, index_name)


def data_efficiency_report(runs: Sequence[Run]) -> Report:
    """Mean ± std over seeds per split, as the baseline README's table, plus the summary used in the picture."""
    labels = [f"{_subset(r)}%" for r in runs]
    results = _results(runs, labels)
    order = sorted(dict.fromkeys(labels), key=lambda s: int(s[:-1]))
    results = sorted(results, key=lambda r: order.index(r.split))
    summary = _summary(results)
    text = ("# Data efficiency: the demo recipe on splits 5-100 % (test split, accuracy in %)\n\n"
            + _summary_markdown(summary, "Split") + "\n" + aggregate_markdown(results).split("\n", 1)[1])
    return Report(text, summary)


def _subset(run: Run) -> int:
    return int(json.loads(run.config_file.read_text(encoding="utf-8"))["subset"])


def _mixstyle_p(run: Run) -> float:
    return float(json.loads(run.config_file.read_text(encoding="utf-8"))["mixstyle_p"])


def _seed(run: Run) -> Optional[int]:
    return json.loads(run.config_file.read_text(encoding="utf-8")).get("seed")


def mixstyle_report(runs: Sequence[Run]) -> Report:
    """Unseen-device (and every device's) accuracy per arm, mean ± std over seeds, and the per-seed difference."""
    labels = [f"mixstyle_p {_mixstyle_p(r):g}" for r in runs]
    results = _results(runs, labels)
    summary = _summary(results)
    per_seed: dict[Optional[int], dict[str, float]] = {}
    for run, result in zip(runs, results):
        per_seed.setdefault(_seed(run), {})[result.split] = 100 * result.metrics["acc.unseen"]
    rows = {seed: arms for seed, arms in per_seed.items() if len(arms) == len(MIXSTYLE_ARMS)}
    lines = ["# Freq-MixStyle: mixstyle_p 0.4 vs 0 on split 100 (test split, accuracy in %)\n",
             _summary_markdown(summary, "Arm"), "\n## Unseen devices (S4-S6) per seed\n",
             "| Seed | " + " | ".join(f"mixstyle_p {p:g}" for p in MIXSTYLE_ARMS) + " | difference |",
             "|---|" + "---|" * (len(MIXSTYLE_ARMS) + 1)]
    differences = []
    for seed, arms in rows.items():
        values = [arms[f"mixstyle_p {p:g}"] for p in MIXSTYLE_ARMS]
        differences.append(values[0] - values[1])
        lines.append(f"| {seed} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {differences[-1]:+.2f} |")
    if differences:
        std = float(np.std(differences, ddof=1)) if len(differences) > 1 else math.nan
        lines.append(f"\nPaired difference (0.4 - 0): {format_mean_std(float(np.mean(differences)), std)} points "
                     f"over {len(differences)} seed(s).")
    text = "\n".join(lines) + "\n\n" + aggregate_markdown(results).split("\n", 1)[1]
    return Report(text, summary)


def seeds_wording(counts: Sequence[int]) -> str:
    """How many seeds stand behind each point, in words: one seed has no spread to show, so it says so."""
    low, high = int(min(counts)), int(max(counts))
    if high == 1:
        return "one seed: no spread"
    if low == high:
        return f"mean ± std over {low} seeds"
    return f"mean ± std over {low}-{high} seeds"


def data_efficiency_figure(summary: pd.DataFrame) -> Figure:
    """Accuracy against the split size (log axis), mean ± std over seeds: macro, device A, unseen devices; with
    one seed per split the points stand alone (no zero-height error bars)."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = [int(s[:-1]) for s in summary.index]
    spread = bool(summary["runs"].max() > 1)
    for title, colour in (("macro", "black"), ("device A", GROUP_COLOURS["real"]), ("unseen", GROUP_COLOURS["unseen"])):
        ax.errorbar(x, summary[f"{title} mean"], yerr=summary[f"{title} std"].fillna(0) if spread else None,
                    marker="o", capsize=3 if spread else 0, color=colour, label=title)
    ax.set_xscale("log")
    ax.set_xticks(x, labels=[f"{v}%" for v in x])
    ax.xaxis.set_minor_locator(NullLocator())  # only the splits' ticks, no unlabelled log-axis minor ticks
    ax.axhline(10, color="grey", linestyle=":", linewidth=0.8, label="chance")
    ax.set_xlabel("training split")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Data efficiency ({seeds_wording(summary['runs'])})")
    return fig


def plot_data_efficiency(summary: pd.DataFrame, path: str | Path) -> Path:
    """`data_efficiency_figure` saved as a picture at `path`."""
    return _save(data_efficiency_figure(summary), path)


def plot_mixstyle(runs: Sequence[Run], path: str | Path) -> Path:
    """Per-device accuracy of each arm, mean ± std over seeds."""
    results = _results(runs, [f"mixstyle_p {_mixstyle_p(r):g}" for r in runs])
    columns = {f"acc.{d}": d.upper() for d in DEVICES}
    mean, std, size = aggregate(results, columns)
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(DEVICES))
    width = 0.8 / max(1, len(mean))
    for i, arm in enumerate(mean.index):
        ax.bar(x + (i - (len(mean) - 1) / 2) * width, mean.loc[arm], width, yerr=std.loc[arm].fillna(0), capsize=2,
               label=f"{arm} ({size[arm]} seed{'s' if size[arm] != 1 else ''})", alpha=0.85)
    for i, d in enumerate(DEVICES):
        ax.axvspan(i - 0.5, i + 0.5, color=GROUP_COLOURS[DEVICE_GROUPS[d]], alpha=0.06, linewidth=0)
    ax.set_xticks(x, labels=[d.upper() for d in DEVICES])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title("Freq-MixStyle: accuracy per device (real A-C, seen S1-S3, unseen S4-S6)")
    return _save(fig, path)


def write_report(report: Report, markdown_path: Path) -> None:
    atomic_write_text(markdown_path, report.markdown)
