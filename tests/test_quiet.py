"""Quiet by default (issue 24): each command the README shows, run in a subprocess on the tiny synthetic dataset
(1 epoch), prints only its own lines: every line of stdout and stderr must match one of the shapes below. TensorFlow,
XLA, absl, W&B and Keras lines (and ANSI colour codes) match none of them, so any such line fails the test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The shapes of the lines our commands write (fullmatch). Deliberately narrow: a new kind of line must be added here.
OWN_LINES = [
    r"",
    # training (train.py, protocol, experiments) and conversion
    r"run id: \S+  \(.+\)",
    r"run \d+ of \d+: \S+ \(split\d+, seed \d+\)",
    r"\[\d+/\d+\] split \d+, seed \d+, mixstyle_p [\d.]+: training",
    r"converted \S+: \{.+\}",
    r"\S+ is already converted",
    r"converting \S+: \d+/\d+ clips \(\d+ %\)",
    r"\S+: split5 \d+, split10 \d+, split25 \d+, split50 \d+, split100 \d+, test \d+",
    r"training \d+ epoch\(s\) of \d+ steps \(\d+ clips of split\d+, batch \d+, [\w-]+\)",
    r"W&B offline: sync later with `wandb sync \S+`",
    r"epoch \d+/\d+: loss [\d.]+ acc [\d.]+ \(\d+ s\)",
    r"epoch \d+/\d+: val/macro_avg_acc [\d.]+ val/loss [\d.]+",
    r"evaluating .+ \(float32 and float16\)",
    r"report written to \S+: [\w.,_ ]+",
    r"macro average accuracy: [\d.]+ \(test split, float16; float32: [\d.]+\)",
    # tables (protocol, experiments, report)
    r"#+ .+", r"\|.+\|", r"Runs: .+",
    r"\d+ runs \(\d+ splits x \d+ seeds\) in \S+; table: \S+",
    r"written: \S+, \S+",
    # evaluation and prediction
    r"Model Complexity: MACs: [\d,]+, Params: [\d,]+ \(at most \d+ bits per parameter\)",
    r"test/macro_avg_acc [\d.]+ \(dev-test, float16 network; float32 [\d.]+\), model \S+",
    r"predicting \d+ clips of \S+ \(.+\)",
    r"predicting: \d+/\d+ clips \(\d+ %\)",
    r"wrote \S+/output\.csv \(\d+ clips\)",
    r"kept \S+/output\.csv: it was predicted from the same model .+",
    r"(evaluation set predictions|predictions|evaluation|bundle|bundle written to): \S+",
    r"bundle written to \S+",
    # export
    r"int8 calibration on \d+ representative log-mels",
    r"offline memory plan: \d+ bytes \(largest live set \d+\)",
    r"(audit: )?(PASS|FAIL): [\d,]+ parameter bytes \(limit [\d,]+\), [\d,]+ MACs \(limit [\d,]+\)",
    r"dev-test: Keras float32 macro acc [\d.]+, exported [\d.]+, top-1 agreement [\d.]+ \(\d+ clips\)",
    r"warning: TFLite Micro skipped: .+",
    r"TFLite Micro.*: .+",
    r"firmware: mel arrays \d+ bytes \(\d+ bands, \d+ weights\)",
    r"quantization: \w+",
    r"TFLite metadata: \d+ end-to-end models \(.+\)",
    r"macro accuracy \(dev-test\): .+; top-1 agreement [\d.]+",
    # edge runtime and scoring
    r"\S+\.wav +[\d.]+ s  \w+ +[\d.]+",
    r"macro accuracy [\d.]+ %  \(accuracy [\d.]+ %, \d+ clips, \d+ classes\)",
    r"device  clips  accuracy", r"class +accuracy", r"\w+ +\d+ +[\d.]+ %", r"\w+ +[\d.]+ %",
]
NOISE = ("\x1b", "\r", "I0000", "W0000", "E0000", "wandb:", "INFO ", "WARNING:", "Traceback", "oneDNN", "cuInit",
         "absl", "XLA", "TensorSpec")


def foreign_lines(text: str) -> list[str]:
    """The lines of `text` that are not ours: noise markers anywhere, or a shape no pattern of OWN_LINES has."""
    patterns = [re.compile(p) for p in OWN_LINES]
    return [line for line in text.split("\n")
            if any(marker in line for marker in NOISE) or not any(p.fullmatch(line) for p in patterns)]


def run_quiet(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A command in a fresh interpreter (no terminal: stdout and stderr are pipes), asserting exit 0 and only our
    lines on both streams."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    for name in ("TF_CPP_MIN_LOG_LEVEL", "WANDB_SILENT", "GLOG_minloglevel", "GRPC_VERBOSITY"):
        env.pop(name, None)  # the command must quiet TensorFlow and W&B itself
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=1800)
    assert done.returncode == 0, (argv, done.stderr[-3000:])
    foreign = foreign_lines(done.stdout) + foreign_lines(done.stderr)
    assert not foreign, (argv[:2], foreign[:10])
    return done


def test_foreign_lines_are_caught():
    """The check itself can fail: TensorFlow's, W&B's and Keras' lines are foreign, ours are not."""
    noisy = ("I0000 00:00:1796321638.325786   26248 port.cc:153] oneDNN custom operations are on.\n"
             "E0000 00:00:1796321659.808321   26248 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
             "wandb: Tracking run with wandb version 0.31.0\n"
             "INFO asc_tf.training.trainer: training 1 epoch(s) of 7 steps (112 clips of split100, batch 16, float32)\n"
             "\x1b[1m1/7\x1b[0m \x1b[32m━━\x1b[0m 44s/step - acc: 0.0000e+00 - loss: 2.2814")
    assert len(foreign_lines(noisy)) == 5
    assert foreign_lines("training 1 epoch(s) of 7 steps (112 clips of split100, batch 16, float32)\n"
                         "epoch 1/1: loss 2.3002 acc 0.0804 (46 s)") == []


@pytest.fixture(scope="module")
def data_flags(dataset_dir, data_config, shards_dir) -> list[str]:
    """The tiny dataset and its session conversion (reused: no command converts again), 1 epoch, W&B offline."""
    return ["--dataset_dir", str(dataset_dir), "--tfrecords_dir", data_config.tfrecords_dir, "--clips_per_shard",
            str(data_config.clips_per_shard), "--batch_size", "16", "--n_epochs", "1", "--wandb", "offline"]


@pytest.fixture(scope="module")
def trained(data_flags, tmp_path_factory) -> tuple[Path, str]:
    """`python train.py ...` (1 epoch), checked quiet; (project folder, run id)."""
    project = tmp_path_factory.mktemp("quiet_project")
    done = run_quiet([str(REPO / "train.py"), *data_flags, "--project_dir", str(project), "--num_workers", "1"],
                     project)
    run_id = re.search(r"^run id: (\S+)", done.stdout, re.M).group(1)
    return project, run_id


def test_train_export_predict_evaluate_edge_score_report_are_quiet(trained, synthetic_root, tmp_path):
    from asc_tf.data.synthetic import EVAL_DIR_NAME, EVAL_LABELS_NAME

    project, run_id = trained
    where = ["--project_dir", str(project)]
    run_quiet([str(REPO / "export_tflite.py"), "--ckpt_id", run_id, "--int8", *where], project)
    bundle = project / "exports" / f"{run_id}_int8"
    run_quiet([str(REPO / "predict.py"), "--ckpt_id", run_id, *where], project)
    run_quiet([str(REPO / "train.py"), "--evaluate", "--ckpt_id", run_id, *where], project)
    run_quiet([str(REPO / "predict.py"), "--tflite", str(bundle), *where], project)
    clip = synthetic_root / EVAL_DIR_NAME / "audio" / "0.wav"
    run_quiet(["-m", "asc_tf.edge", str(bundle), str(clip)], project)
    run_quiet(["-m", "asc_tf.score", str(project / "predictions" / run_id / "output.csv"),
               str(synthetic_root / EVAL_LABELS_NAME)], project)
    run_quiet(["-m", "asc_tf.report", run_id, *where], project)


def test_protocol_is_quiet(data_flags, tmp_path):
    done = run_quiet(["-m", "asc_tf.protocol", "--splits", "100", "--seeds", "1", *data_flags, "--project_dir",
                      str(tmp_path)], tmp_path)
    assert "| 100% | 1 |" in done.stdout


def test_experiments_is_quiet(data_flags, tmp_path):
    done = run_quiet(["-m", "asc_tf.experiments", "data_efficiency", "--seeds", "1", "--splits", "100", *data_flags,
                      "--project_dir", str(tmp_path)], tmp_path)
    assert "written: " in done.stdout


def test_conversion_with_worker_processes_is_quiet(dataset_dir, tmp_path):
    """Two spawned workers read the clips; neither they nor the shard writer (TensorFlow) print anything of theirs."""
    done = run_quiet(["-m", "asc_tf.data.convert", "--dataset_dir", str(dataset_dir), "--tfrecords_dir",
                      str(tmp_path / "tfrecords"), "--num_workers", "2", "--clips_per_shard", "32"], tmp_path)
    assert "(100 %)" in done.stderr  # progress as lines (no terminal here), ending at 100 %
