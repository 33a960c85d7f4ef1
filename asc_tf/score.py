"""`python -m asc_tf.score OUTPUT_CSV LABELS_CSV [--json]`: macro accuracy and accuracy per device of an
evaluation-set `output.csv` against its labels (e.g. `data/synthetic/synthetic-evaluation-labels.csv`).

The command and its library in one module (`score_files`, `format_score`): macro accuracy is the mean of
the class accuracies, as upstream's `macro_avg_acc`; accuracy is also given per device and device group.

The labels file is tab-separated with `filename` and `scene_label` columns and, optionally, `source_label`
(the device; otherwise parsed from a TAU file name) -- the synthetic set's `synthetic-evaluation-labels.csv`
or any file in that format. Clip names are matched as `output.csv` writes them: without the `audio/` prefix.
numpy and pandas only (no TensorFlow), so scoring answers in a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from asc_tf import console
from asc_tf.data.meta import CLASSES, DEVICE_GROUPS, DEVICES, MetadataError, read_tsv


class ScoringError(ValueError):
    """A labels or output file that cannot be scored; the message names the file and line."""


@dataclass(frozen=True)
class Score:
    """Accuracies in [0, 1]; per device / group only where clips exist."""

    clips: int
    accuracy: float
    macro_accuracy: float
    per_class: dict[str, float]
    per_device: dict[str, tuple[int, float]]  # device -> (clips, accuracy)
    per_group: dict[str, tuple[int, float]]


def clip_key(filename: str) -> str:
    """The name a clip is matched by: as predict.py writes it to output.csv (without `audio/`)."""
    return filename[len("audio/"):] if filename.startswith("audio/") else filename


def _read(path: Path, columns: tuple[str, ...]) -> "dict[str, tuple[str, str | None, int]]":
    """key -> (scene_label, device or None, line) of a tab-separated file, with one-line errors."""
    try:
        frame = read_tsv(path, columns)
    except MetadataError as error:
        raise ScoringError(str(error)) from None
    if frame.empty:
        raise ScoringError(f"{path}: no clips listed")
    rows: dict[str, tuple[str, str | None, int]] = {}
    for record in frame.to_dict("records"):
        key, line, scene = clip_key(record["filename"]), record["_line"], record["scene_label"]
        if scene not in CLASSES:
            raise ScoringError(f"{path} line {line}: unknown scene '{scene}'; scenes are {list(CLASSES)}")
        if key in rows:
            raise ScoringError(f"{path} line {line}: {record['filename']} is listed twice (first on line "
                               f"{rows[key][2]})")
        device = record.get("source_label") or None
        if device is not None and device not in DEVICES:
            raise ScoringError(f"{path} line {line}: unknown device '{device}'; devices are {list(DEVICES)}")
        rows[key] = (scene, device, line)
    return rows


def _device(key: str, given: str | None) -> str | None:
    if given:
        return given
    tail = key.rsplit("-", 1)[-1]
    return tail[:-4] if tail.endswith(".wav") and tail[:-4] in DEVICES else None


def score_files(output_csv: str | Path, labels_csv: str | Path) -> Score:
    """Compare the `scene_label` column of `output_csv` with `labels_csv`; every labelled clip must be predicted
    once, and every predicted clip must be labelled."""
    output_csv, labels_csv = Path(output_csv), Path(labels_csv)
    truth = _read(labels_csv, ("filename", "scene_label"))
    predicted = _read(output_csv, ("filename", "scene_label"))
    for key, (_, _, line) in predicted.items():
        if key not in truth:
            raise ScoringError(f"{output_csv} line {line}: clip '{key}' is not in {labels_csv}: "
                               "score the output against the labels of the same evaluation set")
    missing = [key for key in truth if key not in predicted]
    if missing:
        raise ScoringError(f"{output_csv}: no prediction for {len(missing)} labelled clip(s), e.g. '{missing[0]}' "
                           f"({labels_csv} line {truth[missing[0]][2]})")
    keys = list(truth)
    y = np.array([CLASSES.index(truth[k][0]) for k in keys])
    p = np.array([CLASSES.index(predicted[k][0]) for k in keys])
    devices = np.array([_device(k, truth[k][1]) or "" for k in keys])
    correct = y == p
    per_class = {c: float(correct[y == i].mean()) for i, c in enumerate(CLASSES) if np.any(y == i)}
    per_device = {d: (int(np.sum(devices == d)), float(correct[devices == d].mean()))
                  for d in DEVICES if np.any(devices == d)}
    per_group = {}
    for group in dict.fromkeys(DEVICE_GROUPS.values()):
        mask = np.isin(devices, [d for d, g in DEVICE_GROUPS.items() if g == group])
        if mask.any():
            per_group[group] = (int(mask.sum()), float(correct[mask].mean()))
    return Score(len(keys), float(correct.mean()), float(np.mean(list(per_class.values()))), per_class,
                 per_device, per_group)


def format_score(score: Score) -> str:
    """Plain-text report: macro accuracy first, then the device and class tables."""
    lines = [f"macro accuracy {100 * score.macro_accuracy:.2f} %  (accuracy {100 * score.accuracy:.2f} %, "
             f"{score.clips} clips, {len(score.per_class)} classes)", "", "device  clips  accuracy"]
    lines += [f"{d:<6} {n:>6}  {100 * a:6.2f} %" for d, (n, a) in score.per_device.items()]
    lines += [f"{g:<6} {n:>6}  {100 * a:6.2f} %" for g, (n, a) in score.per_group.items()]
    lines += ["", "class              accuracy"]
    lines += [f"{c:<18} {100 * a:6.2f} %" for c, a in score.per_class.items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the score; `error: ...` on stderr and exit code 2 for a file that cannot be scored."""
    parser = argparse.ArgumentParser(prog="python -m asc_tf.score",
                                     description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("output_csv", help="predictions in upstream's format (predict.py's output.csv)")
    parser.add_argument("labels_csv", help="tab-separated filename, scene_label [, source_label] of the same clips")
    parser.add_argument("--json", action="store_true", help="print the score as JSON instead of tables")
    args = parser.parse_args(argv)
    try:
        score = score_files(args.output_csv, args.labels_csv)
    except ScoringError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(score), indent=2) if args.json else format_score(score))
    return 0


if __name__ == "__main__":
    sys.exit(console.run_command(main))  # `--json | head` ends quietly
