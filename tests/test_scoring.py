"""Scoring an output.csv against evaluation labels (`python -m asc_tf.score`)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from asc_tf.data import synthetic
from asc_tf.data.meta import CLASSES
from asc_tf.score import main
from asc_tf.score import ScoringError, score_files


def _output_csv(path, names, predicted):
    """An output.csv as predict.py writes it: names without `audio/`, the label, one probability per class."""
    rows = ["\t".join(["filename", "scene_label", *CLASSES])]
    for name, label in zip(names, predicted):
        probs = ["0.9" if c == label else "0.0111" for c in CLASSES]
        rows.append("\t".join([name[len("audio/"):], label, *probs]))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture()
def labels(synthetic_root):
    return synthetic_root / synthetic.EVAL_LABELS_NAME


def test_scores_the_synthetic_evaluation_labels(labels, tmp_path):
    truth = pd.read_csv(labels, sep="\t")
    predicted = truth["scene_label"].tolist()
    wrong = np.arange(len(predicted)) % 3 == 0  # every third clip wrong
    for i in np.flatnonzero(wrong):
        predicted[i] = CLASSES[(CLASSES.index(predicted[i]) + 1) % len(CLASSES)]
    score = score_files(_output_csv(tmp_path / "output.csv", truth["filename"], predicted), labels)
    correct = ~wrong
    assert score.clips == len(truth) and score.accuracy == pytest.approx(correct.mean())
    classes = truth["scene_label"].to_numpy()
    expected_macro = np.mean([correct[classes == c].mean() for c in CLASSES if np.any(classes == c)])
    assert score.macro_accuracy == pytest.approx(expected_macro)
    devices = truth["source_label"].to_numpy()
    for device, (count, accuracy) in score.per_device.items():
        assert count == np.sum(devices == device) and accuracy == pytest.approx(correct[devices == device].mean())
    assert set(score.per_group) <= {"real", "seen", "unseen"}


def test_device_parsed_from_tau_names_when_labels_have_no_source_column(tmp_path):
    names = ["audio/bus-lyon-1-2-0-a.wav", "audio/bus-lyon-1-2-0-s4.wav", "audio/park-lyon-3-4-0-s4.wav"]
    (tmp_path / "labels.csv").write_text("filename\tscene_label\n" + "".join(
        f"{n}\t{s}\n" for n, s in zip(names, ["bus", "bus", "park"])))
    score = score_files(_output_csv(tmp_path / "output.csv", names, ["bus", "tram", "park"]), tmp_path / "labels.csv")
    assert score.per_device == {"a": (1, 1.0), "s4": (2, 0.5)}
    assert score.macro_accuracy == pytest.approx((0.5 + 1.0) / 2)  # bus 1/2, park 1/1


def test_cli_prints_macro_and_device_accuracy(labels, tmp_path, capsys):
    truth = pd.read_csv(labels, sep="\t")
    out = _output_csv(tmp_path / "output.csv", truth["filename"], truth["scene_label"])
    assert main([str(out), str(labels)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("macro accuracy 100.00 %") and "\ns4 " in text.replace("s4  ", "s4 ")


@pytest.mark.parametrize("damage, message", [
    (lambda rows: rows[:-1], "no prediction for 1 labelled clip"),
    (lambda rows: rows + ["999.wav\tbus" + "\t0.1" * 10], "line {n}: clip '999.wav' is not in"),
    (lambda rows: rows[:2] + [rows[1]] + rows[2:], "line 3: 0.wav is listed twice"),
    (lambda rows: [rows[0], rows[1].replace("\t", ",", 1)] + rows[2:], "line 2: 11 tab-separated fields, the header has 12"),
    (lambda rows: [rows[0], "0.wav\tbeach" + "\t0.1" * 10] + rows[2:], "line 2: unknown scene 'beach'"),
])
def test_bad_output_is_one_line_naming_file_and_line(labels, tmp_path, damage, message):
    truth = pd.read_csv(labels, sep="\t")
    out = _output_csv(tmp_path / "output.csv", truth["filename"], truth["scene_label"])
    rows = damage(out.read_text().splitlines())
    out.write_text("\n".join(rows) + "\n")
    with pytest.raises(ScoringError, match=str(out)):
        score_files(out, labels)
    result = subprocess.run([sys.executable, "-m", "asc_tf.score", str(out), str(labels)], capture_output=True,
                            text=True)
    assert result.returncode == 2 and result.stdout == ""
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out}") and message.format(n=len(rows)) in err[0], err


def test_missing_file_and_scoring_does_not_import_tensorflow():
    code = ("import sys; from asc_tf.score import main; rc = main(['nope.csv', 'nope.csv']); "
            "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert "nope.csv: file not found" in result.stderr


def test_json_into_a_closed_pipe_ends_quietly(labels, tmp_path):
    """`python -m asc_tf.score ... --json | head -1`: the reader goes away before the output is written; the
    command ends with 128 + SIGPIPE like a shell tool, and no BrokenPipeError traceback."""
    truth = pd.read_csv(labels, sep="\t")
    out = _output_csv(tmp_path / "output.csv", truth["filename"], truth["scene_label"])
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes
    with os.fdopen(write, "wb") as stdout:
        result = subprocess.run([sys.executable, "-m", "asc_tf.score", str(out), str(labels), "--json"],
                                stdout=stdout, stderr=subprocess.PIPE, text=True)
    assert result.stderr == "" and result.returncode == 141, result.stderr
