"""train.py: a short run on the synthetic dataset, its outputs, resume after kill -9, --evaluate,
two replicas, W&B offline, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from asc_tf.data.pipeline import make_dataset, steps_per_epoch
from asc_tf.model import build_model
from asc_tf.training.evaluation import evaluate_run
from asc_tf.training.metrics import METRIC_NAMES
from asc_tf.training.trainer import compile_model

REPO = Path(__file__).resolve().parents[1]
TRAIN_FLAGS = ["--batch_size", "16", "--warmup_steps", "5", "--seed", "0", "--clips_per_shard", "32",
               "--num_workers", "1", "--wandb", "disabled"]


@pytest.fixture(scope="session")
def trained(trained_run):
    return trained_run


@pytest.fixture(scope="session")
def run_config(trained_run):
    return trained_run.run.load_config()


def test_a_few_steps_reduce_the_loss(shards_dir, data_config):
    keras.utils.set_random_seed(0)
    model = build_model(data_config)
    compile_model(model, data_config.replace(warmup_steps=0, lr=0.002), steps=100)
    waveform, label = next(iter(make_dataset(shards_dir, "split100", data_config, training=False)))
    # training-mode losses (batch statistics): the eval-mode loss needs BatchNorm's running statistics to settle
    losses = [float(model.train_on_batch(waveform, label)[0]) for _ in range(10)]
    assert losses[-1] < losses[0] - 0.2, losses


def test_run_directory_holds_checkpoint_history_and_reports(trained):
    run = trained.run
    for name in ("config.json", "checkpoints/last.keras", "model.keras", "history.csv", "info.json", "results.md",
                 "confusion_matrix.png", "device_accuracy.png", "training_curves.png"):
        assert (run.path / name).is_file(), name
    history = pd.read_csv(run.history_file)
    config = run.load_config()
    steps = steps_per_epoch(trained.shards_dir, "split100", config.batch_size)
    epochs = list(range(config.n_epochs))
    assert list(history["epoch"]) == epochs and list(history["step"]) == [steps * (e + 1) for e in epochs]
    validated = history["val/macro_avg_acc"].notna()
    assert list(history["epoch"][validated]) == [e for e in epochs if (e + 1) % config.val_every == 0]
    assert trained.metrics["test/macro_avg_acc"] > 0.3  # it learned: chance is 0.1
    assert {"lr", "train/loss", "val/macro_avg_acc", "val/acc.s4"} <= set(history.columns)
    info = json.loads((run.path / "info.json").read_text())
    assert (info["Params"], info["MACs"]) == (61148, 29419156)
    assert list(info["test"][0]) == [f"test/{name}" for name in METRIC_NAMES]
    assert info["test"][0]["test/macro_avg_acc"] == pytest.approx(trained.metrics["test/macro_avg_acc"])


def test_wandb_offline_writes_a_run_without_network(trained):
    offline = list((trained.run.path / "wandb").glob(f"offline-run-*-{trained.run.run_id}"))
    assert offline and list(offline[0].glob("*.wandb"))


def test_evaluate_reproduces_the_end_of_training(trained, run_config):
    config = run_config.replace(evaluate=True, ckpt_id=trained.run.run_id)
    metrics = evaluate_run(config.replace(overwrite=True)).metrics
    for name in ("test/macro_avg_acc", "test/loss", "test/acc.a", "val/macro_avg_acc"):
        assert metrics[name] == pytest.approx(trained.metrics[name], abs=1e-6), name
    out = Path(run_config.project_dir) / "predictions" / trained.run.run_id / "info.json"
    assert json.loads(out.read_text())["test"][0]["test/loss"] == pytest.approx(trained.metrics["test/loss"], abs=1e-6)
    with pytest.raises(Exception, match=r"results.md exists \(run \w+ was evaluated\): pass --overwrite"):
        evaluate_run(config)


def _train_command(dataset_dir, data_config, project_dir, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), "--dataset_dir", str(dataset_dir), "--tfrecords_dir",
            data_config.tfrecords_dir, "--project_dir", str(project_dir), *TRAIN_FLAGS, *extra]


def _final_weights(project_dir: Path) -> tuple[str, list[np.ndarray]]:
    (run_dir,) = [p for p in (project_dir / "DCASE24_Task1").iterdir() if p.is_dir()]
    model = keras.saving.load_model(run_dir / "model.keras")
    return run_dir.name, model.get_weights()


def test_resume_after_kill_equals_uninterrupted_run(dataset_dir, data_config, shards_dir, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    straight = tmp_path / "straight"
    subprocess.run(_train_command(dataset_dir, data_config, straight, "--n_epochs", "3"), check=True, env=env,
                   capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_train_command(dataset_dir, data_config, killed, "--n_epochs", "3"), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    history = None
    while time.time() < deadline and process.poll() is None:
        found = list(killed.glob("DCASE24_Task1/*/history.csv"))
        if found:
            history = found[0]
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # in epoch 1, right after epoch 0's checkpoint
    process.wait()
    assert history is not None and len(pd.read_csv(history)) == 1, "the kill did not land after the first epoch"
    run_id = history.parent.name
    # no --wandb: the run keeps its own mode (disabled), not the flag's default (auto: offline here, a wandb/ folder)
    env.pop("WANDB_MODE", None)
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", run_id, "--project_dir", str(killed)],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"run id: {run_id}" in result.stdout
    assert not (history.parent / "wandb").exists(), "the resumed run turned W&B back on"
    _, expected = _final_weights(straight)
    _, resumed = _final_weights(killed)
    for a, b in zip(expected, resumed):
        np.testing.assert_array_equal(a, b)
    assert list(pd.read_csv(history)["epoch"]) == [0, 1, 2]


def test_two_replica_mirrored_strategy_trains(dataset_dir, data_config, shards_dir, tmp_path):
    script = textwrap.dedent(f"""
        import sys, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        sys.argv = ["train.py", *{_train_command(dataset_dir, data_config, tmp_path, "--n_epochs", "1",
                                                 "--strategy", "mirrored")[2:]!r}]
        sys.path.insert(0, {str(REPO)!r})
        import runpy
        runpy.run_path({str(REPO / "train.py")!r}, run_name="__main__")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy over 2 replicas" in result.stderr
    assert "macro average accuracy" in result.stdout


@pytest.mark.parametrize("argv, message", [
    (["--dataset_dir", "/nonexistent/TAU"], "error: no TAU dataset at '/nonexistent/TAU'"),
    (["--evaluate", "--ckpt_id", "nope"], "error: unknown run id 'nope'"),
    (["--resume", "nope"], "error: unknown run id 'nope'"),
    (["--strategy", "multiworker"], "error: --strategy multiworker: Keras 3's model.fit cannot train"),
])
def test_bad_input_is_one_clear_line(argv, message, tmp_path, capsys):
    import train as train_script

    code = train_script.main([*argv, "--project_dir", str(tmp_path), "--wandb", "disabled"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(message)


def test_bad_flag_value_is_refused(capsys):
    import train as train_script

    with pytest.raises(SystemExit) as exit_info:
        train_script.main(["--subset", "7"])
    assert exit_info.value.code == 2
    assert "argument --subset: invalid choice: 7" in capsys.readouterr().err


def test_demo_makes_its_dataset_and_trains(monkeypatch, tmp_path, capsys):
    import train as train_script
    from asc_tf.training import demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "DEMO_SIZE", "tiny")
    monkeypatch.delenv("ASC_TF_DATASET_DIR", raising=False)
    code = train_script.main(["--demo", "--n_epochs", "1", "--wandb", "disabled", "--num_workers", "1"])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "data" / "synthetic").is_dir()
    assert "macro average accuracy" in out and "python export_tflite.py --ckpt_id" in out
    assert len(list((tmp_path / "DCASE24_Task1").iterdir())) == 1


def test_step_logger_recovers_each_steps_loss_from_keras_running_mean():
    from asc_tf.training.trainer import StepLogger

    class FakeRun:
        def __init__(self):
            self.logged = []

        def log(self, values, step):
            self.logged.append((step, values))

    class FakeOptimizer:
        iterations = keras.Variable(0, dtype="int64")
        learning_rate = keras.Variable(0.001)

    losses = np.random.default_rng(0).uniform(1, 3, 120)
    run = FakeRun()
    logger = StepLogger(run)
    logger.set_model(type("M", (), {"optimizer": FakeOptimizer()})())
    logger.on_epoch_begin(0)
    for batch, _ in enumerate(losses):
        FakeOptimizer.iterations.assign(batch + 1)
        logger.on_train_batch_end(batch, {"loss": float(np.mean(losses[:batch + 1]))})
    assert [step for step, _ in run.logged] == [50, 100]
    assert run.logged[0][1]["train/loss"] == pytest.approx(losses[49], rel=1e-9)
    assert run.logged[1][1]["train/loss"] == pytest.approx(losses[99], rel=1e-9)


def test_mixed_precision_trains_quietly_a_line_per_epoch_and_ends_float32(dataset_dir, data_config, shards_dir,
                                                                          tmp_path):
    """`--precision 16-mixed` trains the network under mixed_float16 with loss scaling (float32 variables); the
    final model and everything evaluated are float32. In a log file (not a terminal) the command prints its own
    lines, one per epoch with the total, and none of TensorFlow's or W&B's (offline here)."""
    result = subprocess.run(_train_command(dataset_dir, data_config, tmp_path, "--n_epochs", "2", "--val_every", "2",
                                           "--subset", "50", "--precision", "16-mixed", "--wandb", "offline"),
                            capture_output=True, text=True, timeout=1800,
                            env={k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "WANDB_SILENT")})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert any(line.startswith("training 2 epoch(s) of 4 steps (52 clips of split50") and "mixed_float16 network"
               in line for line in lines)
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2", "epoch 2/2"]
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr
    for marker in ("I0000", "E0000", "oneDNN", "cudart", "absl", "TensorSpec", "wandb:"):
        assert marker not in result.stderr + result.stdout, marker
    run_id, _ = _final_weights(tmp_path)
    checkpoint = keras.saving.load_model(tmp_path / "DCASE24_Task1" / run_id / "checkpoints" / "last.keras")
    assert type(checkpoint.optimizer).__name__ == "LossScaleOptimizer"
    assert checkpoint.get_layer("network").get_layer("s1_b1_exp_conv").dtype_policy.name == "mixed_float16"
    final = keras.saving.load_model(tmp_path / "DCASE24_Task1" / run_id / "model.keras")
    assert {layer.dtype_policy.name for layer in final._flatten_layers()} == {"float32"}
    np.testing.assert_array_equal(final.get_weights()[0], checkpoint.get_weights()[0])
    assert "macro average accuracy" in result.stdout


def test_bf16_mixed_trains_and_evaluates(data_config, shards_dir, tmp_path):
    from asc_tf.training.trainer import train

    config = data_config.replace(project_dir=str(tmp_path), n_epochs=1, wandb="disabled", precision="bf16-mixed",
                                 subset=25)
    result = train(config, progress=False)
    model = keras.saving.load_model(result.run.final_model)
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"float32"}
    assert 0.0 <= result.metrics["test/macro_avg_acc"] <= 1.0
    history = pd.read_csv(result.run.history_file)
    assert list(history["epoch"]) == [0] and np.isfinite(history["train/loss"]).all()
