"""Run reports: `results.md` (the baseline README's class- and device-wise tables), `info.json` (upstream's
layout), PNG pictures, and the "mean ± std" aggregate over runs (seeds) behind `python -m asc_tf.report`.

NaN in `info.json`: upstream's `json.dump` writes a bare `NaN` (not valid JSON) for an absent device or
class; we write `null` instead, so any strict JSON parser reads the file. `read_info_json` accepts both.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # matplotlib loads when a picture is drawn: `python -m asc_tf.report` answers without it
    from matplotlib.figure import Figure

from asc_tf.data.meta import CLASSES, DEVICE_GROUPS, DEVICES
from asc_tf.io import atomic_path, atomic_write_text
from asc_tf.training.errors import ReportError
from asc_tf.training.metrics import GROUPS, METRIC_NAMES
from asc_tf.training.runs import INFO_FILE, RESULTS_FILE

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"  # optional, in a run directory: its "subset" names the aggregate's row
CONFUSION_PNG = "confusion_matrix.png"
DEVICE_PNG = "device_accuracy.png"
CURVES_PNG = "training_curves.png"
GROUP_COLOURS: dict[str, str] = {"real": "tab:blue", "seen": "tab:orange", "unseen": "tab:green"}

# metric key -> column title, in the baseline README's order
CLASS_COLUMNS: dict[str, str] = {
    **{f"acc.{c}": c.replace("_", " ").title() for c in CLASSES}, "macro_avg_acc": "Macro Avg Acc"}
DEVICE_COLUMNS: dict[str, str] = {
    **{f"acc.{d}": d.upper() for d in DEVICES}, **{f"acc.{g}": g.title() for g in GROUPS}}
SUMMARY_COLUMNS: dict[str, str] = {"macro_avg_acc": "Macro Avg Acc", "acc": "Accuracy"}


# ----------------------------------------------------------------------------------------------- tables
def unprefixed(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics without a common `val/` or `test/` prefix (unchanged if the keys carry none)."""
    keys = list(metrics)
    if keys and all("/" in k for k in keys) and len({k.split("/", 1)[0] for k in keys}) == 1:
        return {k.split("/", 1)[1]: v for k, v in metrics.items()}
    return dict(metrics)


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _count(value: Any) -> int:
    number = _number(value)
    return int(number) if math.isfinite(number) else 0


def accuracy_frame(runs: Mapping[str, Mapping[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    """Accuracies in percent: one row per run (index = run label), one column per title of `columns`."""
    rows = {label: {title: 100.0 * _number(unprefixed(m).get(key)) for key, title in columns.items()}
            for label, m in runs.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(columns.values()))


def format_percent(value: float) -> str:
    """A percentage with 2 decimals, `n/a` for NaN (absent device or class)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def format_mean_std(mean: float, std: float) -> str:
    """`mean ± std` with 2 decimals; the mean alone when std is undefined (one run)."""
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.2f}" if not math.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def markdown_table(frame: pd.DataFrame, index_name: str) -> str:
    """A GitHub markdown table of a frame of strings, its index as the first column."""
    header = [index_name, *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * len(frame.columns)) + "|"]
    for label, row in frame.iterrows():
        lines.append("| " + " | ".join([str(label), *map(str, row.tolist())]) + " |")
    return "\n".join(lines) + "\n"


def results_markdown(metrics: Mapping[str, Any], confusion: Optional[np.ndarray] = None,
                     label: str = "this run", title: str = "Results", pictures: bool = True) -> str:
    """`results.md` of one run: summary line, class-wise and device-wise accuracy tables (percent), confusion."""
    m = unprefixed(metrics)
    runs = {label: m}
    classwise = accuracy_frame(runs, CLASS_COLUMNS).map(format_percent)
    devicewise = accuracy_frame(runs, DEVICE_COLUMNS).map(format_percent)
    counts = ", ".join(f"{d.upper()} {_count(m.get(f'cnt.{d}'))}" for d in DEVICES)
    parts = [
        f"# {title}\n",
        f"Macro average accuracy (the challenge metric): **{format_percent(100 * _number(m.get('macro_avg_acc')))} %**; "
        f"accuracy {format_percent(100 * _number(m.get('acc')))} %; loss {_number(m.get('loss')):.4f} "
        f"(mean of batch means, as upstream). Clips per device: {counts}.\n",
        "## Class-wise accuracy (%)\n", markdown_table(classwise, "Split"),
        "## Device-wise accuracy (%)\n",
        "Real = A, B, C; Seen = S1-S3 (in the training splits); Unseen = S4-S6 (absent from training). "
        "Groups are micro averages over their clips.\n",
        markdown_table(devicewise, "Split"),
    ]
    if confusion is not None:
        names = [c.replace("_", " ").title() for c in CLASSES]
        frame = pd.DataFrame(np.asarray(confusion, dtype=np.int64), index=names, columns=names)
        parts += ["## Confusion matrix (clips; rows: true class, columns: predicted class)\n",
                  markdown_table(frame, "True \\ Predicted")]
    if pictures:
        parts += ["## Pictures\n", f"![confusion matrix]({CONFUSION_PNG})\n", f"![device accuracy]({DEVICE_PNG})\n",
                  f"![training curves]({CURVES_PNG})\n"]
    return "\n".join(parts)


def write_results_md(path: str | Path, metrics: Mapping[str, Any], confusion: Optional[np.ndarray] = None,
                     label: str = "this run", title: str = "Results", pictures: bool = True) -> Path:
    """Write `results.md` atomically; returns its path."""
    atomic_write_text(path, results_markdown(metrics, confusion, label, title, pictures))
    return Path(path)


# ----------------------------------------------------------------------------------------------- info.json
def _json_clean(value: Any) -> Any:
    """JSON-ready copy: NaN and +-inf -> None (null), numpy scalars and arrays -> Python numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _json_clean(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def info_dict(metrics: Mapping[str, Any], macs: int, params: int,
              extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Upstream's `info.json` content: `{"MACs", "Params", "test": [{"test/acc": ..., 69 keys}]}` (+ extra keys)."""
    m = unprefixed(metrics)
    missing = [k for k in METRIC_NAMES if k not in m]
    if missing:
        raise ValueError(f"metrics lack {len(missing)} of upstream's keys, e.g. {missing[:3]}")
    out: dict[str, Any] = {"MACs": int(macs), "Params": int(params),
                           "test": [{f"test/{k}": _json_clean(m[k]) for k in METRIC_NAMES}]}
    out.update({str(k): _json_clean(v) for k, v in (extra or {}).items()})
    return out


def write_info_json(path: str | Path, metrics: Mapping[str, Any], macs: int, params: int,
                    extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Write `info.json` atomically in upstream's layout, NaN as null (strict JSON); returns its path."""
    text = json.dumps(info_dict(metrics, macs, params, extra), indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    return Path(path)


def read_info_json(path: str | Path) -> dict[str, float]:
    """The 69 test metrics (unprefixed, null/NaN -> NaN) of an `info.json`; ReportError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from None
    layout = 'expected {"MACs": int, "Params": int, "test": [{"test/acc": ..., ...}]}'
    if not isinstance(data, dict) or not isinstance(data.get("test"), list) or not data["test"] \
            or not isinstance(data["test"][0], dict):
        raise ReportError(f"{path}: not upstream's info.json layout, {layout}")
    test = data["test"][0]
    missing = [f"test/{k}" for k in METRIC_NAMES if f"test/{k}" not in test]
    if missing:
        raise ReportError(f"{path}: {len(missing)} of the 69 metrics missing, e.g. {missing[:3]}")
    values: dict[str, float] = {}
    for key in METRIC_NAMES:
        value = test[f"test/{key}"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ReportError(f"{path}: test/{key} is {value!r}, expected a number or null")
        values[key] = _number(value)
    return values


# ----------------------------------------------------------------------------------------------- pictures
def _figure(**kwargs: Any) -> "Figure":
    """A matplotlib Figure without pyplot: no global backend state, no display needed."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig: Figure, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)


def plot_confusion_matrix(confusion: np.ndarray, path: str | Path, title: str = "Confusion matrix",
                          run_id: Optional[str] = None) -> Path:
    """Confusion matrix normalised per true class (rows sum to 1), class names on the axes, values annotated."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    names = [c.replace("_", " ") for c in CLASSES]
    fig = _figure(figsize=(9, 8), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            text = f"{norm[i, j]:.2f}" if rows[i, 0] > 0 else "-"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(_with_run(title, run_id))
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    return _save(fig, path)


def _with_run(title: str, run_id: Optional[str]) -> str:
    """A picture's title naming the run it shows (pictures get copied around without their folder)."""
    return f"{title}: run {run_id}" if run_id else title


def accuracy_limits(values: Sequence[float], pad: float = 3.0) -> tuple[float, float]:
    """A y-range (percent) around the finite `values` with some room, within 0-100: differences of a few points
    stay visible instead of being flattened by a 0-100 axis."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 100.0
    low, high = min(finite), max(finite)
    span = max(high - low, 2.0)
    return max(0.0, low - span * 0.15 - pad), min(100.0, high + span * 0.15 + pad)


def plot_device_accuracy(metrics: Mapping[str, Any], path: str | Path, title: str = "Accuracy per device",
                         run_id: Optional[str] = None) -> Path:
    """Accuracy per device as dots coloured by device group, each group's (micro) mean as a dashed line over its
    devices and the macro average as a dotted line. Values are printed under the device names, where no line
    crosses them; the axis spans the data's range (a dot plot: no bar suggests a zero baseline)."""
    m = unprefixed(metrics)
    acc = np.array([100.0 * _number(m.get(f"acc.{d}")) for d in DEVICES])
    fig = _figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(DEVICES))
    colours = [GROUP_COLOURS.get(DEVICE_GROUPS[d], "grey") for d in DEVICES]
    finite = np.isfinite(acc)
    ax.vlines(x[finite], 0, acc[finite], colors=_colours_of(colours, finite), alpha=0.25, linewidth=6)
    ax.scatter(x[finite], acc[finite], c=_colours_of(colours, finite), s=70, zorder=3)
    means = []
    for group in GROUPS:
        idx = [i for i, d in enumerate(DEVICES) if DEVICE_GROUPS[d] == group]
        mean = 100.0 * _number(m.get(f"acc.{group}"))
        means.append(mean)
        if math.isfinite(mean):
            ax.hlines(mean, idx[0] - 0.4, idx[-1] + 0.4, colors=GROUP_COLOURS.get(group, "grey"), linestyles="--",
                      label=f"{group}: {mean:.2f} %")
        else:
            ax.plot([], [], color=GROUP_COLOURS.get(group, "grey"), label=f"{group}: n/a")
    macro = 100.0 * _number(m.get("macro_avg_acc"))
    if math.isfinite(macro):
        ax.axhline(macro, color="black", linewidth=0.8, linestyle=":", label=f"macro avg acc: {macro:.2f} %")
    ax.set_xticks(x, labels=[f"{d.upper()}\n{format_percent(v)}" for d, v in zip(DEVICES, acc)])
    ax.set_xlim(-0.6, len(DEVICES) - 0.4)
    ax.set_ylim(*accuracy_limits([*acc, *means, macro]))
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(_with_run(title, run_id))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize=8, frameon=False)
    return _save(fig, path)


def _colours_of(colours: Sequence[str], keep: np.ndarray) -> list[str]:
    """The colours of the kept (finite) points."""
    return [c for c, k in zip(colours, keep) if k]


def plot_training_curves(history: Mapping[str, Sequence[Any]], path: str | Path,
                         title: str = "Training curves", run_id: Optional[str] = None) -> Path:
    """Loss (train/loss, val/loss), val/macro_avg_acc and lr per epoch, epochs counted from 1 as in the logs;
    validation runs every few epochs, so its points are joined over the epochs it ran; missing keys leave a
    panel empty."""
    panels = [("loss", ["train/loss", "val/loss"], 1.0), ("macro avg acc (%)", ["val/macro_avg_acc"], 100.0),
              ("learning rate", ["lr"], 1.0)]
    fig = _figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels))
    epochs_logged = history.get("epoch")
    for ax, (ylabel, keys, scale) in zip(axes, panels):
        drawn = False
        for key in keys:
            values = np.asarray([_number(v) for v in (history.get(key) or [])], dtype=np.float64)
            if not len(values):
                continue
            if epochs_logged is not None and len(epochs_logged) == len(values):
                epochs = np.asarray([_number(e) for e in epochs_logged]) + 1  # history.csv counts from 0
            else:
                epochs = np.arange(1, len(values) + 1)
            keep = np.isfinite(values)
            if keep.any():
                ax.plot(epochs[keep], scale * values[keep], marker="o" if keep.sum() < len(values) else ".",
                        label=key)
                drawn = True
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(_with_run(title, run_id))
    return _save(fig, path)


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def write_run_report(run_dir: str | Path, metrics: Mapping[str, Any], confusion: np.ndarray,
                     history: Optional[Mapping[str, Sequence[Any]]] = None, macs: Optional[int] = None,
                     params: Optional[int] = None, label: str = "this run",
                     info_extra: Optional[Mapping[str, Any]] = None, run_id: Optional[str] = None) -> dict[str, Path]:
    """Everything of one run in `run_dir`: results.md, the three PNGs (titled with `run_id`, default the folder's
    name), and info.json when MACs and Params are given. Returns the written paths by file name."""
    run_dir = Path(run_dir)
    run_id = run_id or run_dir.name
    written = {
        RESULTS_FILE: write_results_md(run_dir / RESULTS_FILE, metrics, confusion, label=label,
                                       title=f"Results: {run_dir.name}"),
        CONFUSION_PNG: plot_confusion_matrix(confusion, run_dir / CONFUSION_PNG, run_id=run_id),
        DEVICE_PNG: plot_device_accuracy(metrics, run_dir / DEVICE_PNG, run_id=run_id),
        CURVES_PNG: plot_training_curves(history or {}, run_dir / CURVES_PNG, run_id=run_id),
    }
    if macs is not None and params is not None:
        written[INFO_FILE] = write_info_json(run_dir / INFO_FILE, metrics, macs, params, info_extra)
    logger.info("report written to %s: %s", run_dir, ", ".join(written))
    return written


# ----------------------------------------------------------------------------------------------- aggregate
@dataclass
class RunResult:
    """One run's test metrics as read from its info.json, with the row (split) it belongs to."""
    name: str
    info_path: Path
    split: str
    metrics: dict[str, float]


def resolve_info_path(run: str | Path, project_dir: str | Path = "DCASE24_Task1") -> Path:
    """info.json of a run given as an info.json file, a run directory, or a run id under `project_dir`."""
    candidate = Path(run)
    if candidate.is_file():
        return candidate
    for folder in (candidate, Path(project_dir) / str(run)):
        if folder.is_dir():
            return folder / INFO_FILE
    raise ReportError(f"run '{run}' not found: no directory {candidate} nor {Path(project_dir) / str(run)}")


def _split_label(*run_dirs: Path) -> str:
    """`<subset>%` from the first run's config.json that records one (the README's "Split" rows), else `all`."""
    for run_dir in run_dirs:
        try:
            subset = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8")).get("subset")
        except (OSError, ValueError, AttributeError):
            continue
        if subset is not None:
            return f"{subset}%"
    return "all"


def load_run(run: str | Path, project_dir: str | Path = "DCASE24_Task1") -> RunResult:
    """Read one run (directory, run id or info.json path); ReportError naming the file if unreadable. The split
    comes from config.json beside info.json, or in `project_dir/<id>/` (for `predictions/<id>/info.json`)."""
    info = resolve_info_path(run, project_dir)
    split = _split_label(info.parent, Path(project_dir) / info.parent.name)
    return RunResult(name=info.parent.name, info_path=info, split=split, metrics=read_info_json(info))


def aggregate(results: Sequence[RunResult], columns: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(mean, std, runs) of accuracies in percent per split row over runs; std is the sample std (ddof=1)
    and NaN values (an absent device) are skipped."""
    frame = accuracy_frame({i: r.metrics for i, r in enumerate(results)}, columns)
    frame.index = pd.Index([r.split for r in results], name="Split")
    grouped = frame.groupby(level=0, sort=False)
    return grouped.mean(), grouped.std(ddof=1), grouped.size()


def aggregate_markdown(results: Sequence[RunResult]) -> str:
    """The README-style "mean ± std" tables over runs: summary, class-wise and device-wise accuracy (%)."""
    if not results:
        raise ReportError("no runs to aggregate")
    parts = ["# Results over runs (mean ± sample std over seeds, accuracy in %)\n",
             "Runs: " + ", ".join(f"{r.name} ({r.split})" for r in results) + "\n"]
    for heading, columns in (("Macro average accuracy", SUMMARY_COLUMNS), ("Class-wise accuracy", CLASS_COLUMNS),
                             ("Device-wise accuracy", DEVICE_COLUMNS)):
        mean, std, size = aggregate(results, columns)
        cells = pd.DataFrame({c: [format_mean_std(a, b) for a, b in zip(mean[c], std[c])] for c in mean.columns},
                             index=mean.index)
        if columns is SUMMARY_COLUMNS:
            cells.insert(0, "Runs", size.astype(str))
        parts += [f"## {heading}\n", markdown_table(cells, "Split")]
    return "\n".join(parts)
