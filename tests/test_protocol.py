"""asc_tf.protocol: (split, seed) runs with fixed ids, finished runs skipped, a changed recipe refused, and
2 x 2 runs on a real local Ray cluster (a head and a worker node started here, on 127.0.0.1) whose worker
node is killed mid-run: the run is resumed on the head and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asc_tf.config import Config
from asc_tf.protocol import protocol_specs
from asc_tf.training.fleet import FleetError, status

REPO = Path(__file__).resolve().parents[1]
RUN_FLAGS = ["--n_epochs", "2", "--val_every", "0", "--batch_size", "16", "--warmup_steps", "5",
             "--clips_per_shard", "32", "--num_workers", "1", "--wandb", "disabled", "--cpus_per_run", "1"]
RAY_TIMEOUT_S = 1200  # the whole cluster run; the machine is shared, so generous, yet bounded


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO),
                RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3")


def _protocol(data_config: Config, project_dir: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "asc_tf.protocol", "--dataset_dir", str(data_config.dataset_dir),
            "--tfrecords_dir", str(data_config.tfrecords_dir), "--project_dir", str(project_dir), *RUN_FLAGS,
            *flags]


def test_specs_have_fixed_ids_seeds_and_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    specs = protocol_specs(Config(dataset_dir="data", seed=7), [25, 100], 2, "g")
    assert [s.run_id for s in specs] == ["g-split25-seed7", "g-split25-seed8", "g-split100-seed7", "g-split100-seed8"]
    assert [(s.config.subset, s.config.seed) for s in specs] == [(25, 7), (25, 8), (100, 7), (100, 8)]
    assert all(Path(s.config.dataset_dir).is_absolute() and Path(s.config.project_dir) == tmp_path for s in specs)
    assert all(s.group == "g" for s in specs)


def test_run_states_and_a_changed_recipe(tmp_path):
    spec = protocol_specs(Config(project_dir=str(tmp_path), n_epochs=3), [5], 1, "g")[0]
    assert status(spec) == "new"
    spec.run.path.mkdir(parents=True)
    spec.run.config_file.write_text(json.dumps(spec.config.to_dict()))
    assert status(spec) == "empty"
    (spec.run.path / "checkpoints").mkdir()
    spec.run.last_checkpoint.write_bytes(b"x")
    assert status(spec) == "resumable"
    spec.run.final_model.write_bytes(b"x")
    (spec.run.path / "info.json").write_text("{}")
    assert status(spec) == "finished"
    other = protocol_specs(Config(project_dir=str(tmp_path), n_epochs=4), [5], 1, "g")[0]
    with pytest.raises(FleetError, match="--n_epochs 3, now 4"):
        status(other)
    done = protocol_specs(Config(project_dir=str(tmp_path), n_epochs=3, wandb="offline"), [5], 1, "g")[0]
    assert status(done) == "finished"  # where it logs is not part of the recipe


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "asc_tf.protocol", "--splits", "5", "--seeds", "1",
                             "--dataset_dir", str(tmp_path / "nothing"), "--project_dir", str(tmp_path),
                             "--wandb", "disabled"], capture_output=True, text=True, env=_env(), cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no TAU dataset at")
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------- Ray cluster
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_tree(process: subprocess.Popen, sig: int) -> None:
    """Signal a `ray start --block` process and everything it started (by pid: nothing else on the machine)."""
    for pid in [process.pid, *_descendants(process.pid)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class LocalCluster:
    """A Ray head and one worker node on 127.0.0.1, each a `ray start --block` process of this test."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, *flags: str) -> None:
        log = open(self.root / f"{name}.log", "w")
        self.nodes[name] = subprocess.Popen(
            ["ray", "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats",
             "--object-store-memory=100000000", *flags], stdout=log, stderr=subprocess.STDOUT, env=_env(),
            start_new_session=True)

    def start(self) -> None:
        self._start("head", "--head", f"--port={self.port}", f"--ray-client-server-port={_free_port()}",
                    "--include-dashboard=false", f"--temp-dir={self.root / 'r'}",
                    f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}",
                    f"--runtime-env-agent-port={_free_port()}")
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.nodes["head"].poll() is not None:
                pytest.skip("Ray cannot start here: " + (self.root / "head.log").read_text()[-500:])
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.skip("Ray cannot start here: the head did not listen within 120 s")
        self._start("worker", f"--address={self.address}", f"--metrics-export-port={_free_port()}",
                    f"--runtime-env-agent-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}")

    def task_on(self, node: str, prefix: str) -> str | None:
        """The run id of the protocol task running on `node` (its worker's title is `ray::<run id>`)."""
        for pid in _descendants(self.nodes[node].pid):
            title = _cmdline(pid).strip()
            if title.startswith(f"ray::{prefix}"):
                return title.split()[0][len("ray::"):]
        return None

    def stop(self) -> None:
        for process in self.nodes.values():
            _kill_tree(process, signal.SIGTERM)
        for process in self.nodes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            _kill_tree(process, signal.SIGKILL)
            process.wait()


def _weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()


def test_protocol_on_a_local_ray_cluster_survives_a_killed_worker(data_config, shards_dir, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-protocol.txt")
    root = Path(tempfile.mkdtemp(prefix="asc_ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    cluster = LocalCluster(root)
    project = tmp_path / "cluster_runs"
    driver = None
    try:
        cluster.start()
        with open(root / "driver.log", "w") as log:
            driver = subprocess.Popen(_protocol(data_config, project, "--address", cluster.address, "--splits", "50",
                                                "100", "--seeds", "2"), stdout=log, stderr=subprocess.STDOUT,
                                      env=_env(), cwd=REPO)
        deadline = time.time() + RAY_TIMEOUT_S
        killed, first_epoch = None, None
        while time.time() < deadline and driver.poll() is None and killed is None:
            run_id = cluster.task_on("worker", "protocol-split")
            history = project / "DCASE24_Task1" / str(run_id) / "history.csv"
            if run_id and history.is_file():
                first_epoch = pd.read_csv(history)
                _kill_tree(cluster.nodes["worker"], signal.SIGKILL)  # the machine dies mid-run
                cluster.nodes["worker"].wait()
                killed = run_id
            time.sleep(0.1)
        assert killed is not None, "no run was caught between its first and last epoch on the worker node: " + (
            root / "driver.log").read_text()[-2000:]
        assert len(first_epoch) == 1
        driver.wait(timeout=max(1.0, deadline - time.time()))
        output = (root / "driver.log").read_text()
        assert driver.returncode == 0, output[-3000:]

        runs = project / "DCASE24_Task1"
        table = (runs / "protocol.md").read_text()
        assert "| 50% | 2 |" in table and "| 100% | 2 |" in table
        history = pd.read_csv(runs / killed / "history.csv")
        assert list(history["epoch"]) == [0, 1]
        # resumed from the checkpoint, not trained again: epoch 0's row (with its timing) is the one written before
        pd.testing.assert_frame_equal(history.iloc[:1][list(first_epoch.columns)], first_epoch, check_dtype=False)

        # the same run, uninterrupted, here
        subset, seed = killed.split("-split")[1].split("-seed")
        reference = tmp_path / "reference"
        result = subprocess.run(_protocol(data_config, reference, "--splits", subset, "--seed", seed, "--seeds", "1"),
                                capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        for a, b in zip(_weights(reference / "DCASE24_Task1" / killed), _weights(runs / killed), strict=True):
            np.testing.assert_array_equal(a, b)

        # rerunning does nothing but the table: every run is finished
        stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/model.keras")}
        again = subprocess.run(_protocol(data_config, project, "--splits", "50", "100", "--seeds", "2"),
                               capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stderr.count("finished already") == 4 and len(stamps) == 4
        assert stamps == {p: p.stat().st_mtime_ns for p in runs.glob("*/model.keras")}
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        cluster.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_each_run_reaches_wandb_in_the_protocols_group(tmp_path, monkeypatch):
    import wandb

    from asc_tf.training.fleet import _wandb_group

    from asc_tf.config import Config
    from asc_tf.training.runs import create_run
    from asc_tf.training.trainer import start_wandb

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    earlier = wandb.init(project="p", id="g0", mode="offline", dir=str(tmp_path))  # wandb set up before the group
    earlier.finish()
    config = Config(project_dir=str(tmp_path), wandb="offline")
    with _wandb_group("protocol"):
        run = start_wandb(config, create_run(config, "g1"), resume=False)  # as train() starts it
        assert run.group == "protocol"
        run.finish()
    assert "WANDB_RUN_GROUP" not in os.environ


def test_an_unreachable_cluster_is_one_line_at_once(tmp_path):
    from asc_tf.training.fleet import check_reachable

    with pytest.raises(FleetError, match="no Ray cluster answers at 127.0.0.1:"):
        check_reachable(f"127.0.0.1:{_free_port()}")
    check_reachable("auto")  # resolved by Ray itself
