"""`python -m asc_tf.experiments`: planned runs are normal run folders, finished ones are skipped, interrupted
ones resumed, shared ones trained once, and the tables are the report's mean ± std tables.
Tiny dataset, one epoch per run: this proves the machinery, not the figures (those are benchmarks)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from asc_tf.config import Config
from asc_tf.training import experiments


def _runs(root):
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file())


def test_plans_splits_and_arms_over_seeds():
    base = Config(seed=None)
    plan = experiments.plan("data_efficiency", base, range(2))
    assert [(c.subset, c.seed) for c in plan] == [(s, seed) for seed in (0, 1) for s in (5, 10, 25, 50, 100)]
    arms = experiments.plan("mixstyle", base, [3])
    assert [(c.subset, c.mixstyle_p, c.seed) for c in arms] == [(100, 0.4, 3), (100, 0.0, 3)]
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.plan("nope", base, [0])


def test_run_all_skips_finished_resumes_interrupted_and_trains_missing(tmp_path):
    """With a fake trainer (no TensorFlow): which runs are trained, resumed or skipped."""
    base = Config(project_dir=str(tmp_path), n_epochs=1)
    calls = []

    def fake_train(config):
        calls.append((config.subset, config.resume))
        run = experiments.find_run(config.replace(resume=None)) if config.resume else None
        path = run.path if run else tmp_path / base.project_name / f"run{len(calls)}"
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(config.replace(resume=None).to_dict()))
        (path / "info.json").write_text("{}")

    configs = experiments.plan("data_efficiency", base, [0])
    experiments.run_all(configs, fake_train)
    assert calls == [(s, None) for s in (5, 10, 25, 50, 100)]
    calls.clear()
    interrupted = experiments.find_run(configs[2])
    (interrupted.path / "info.json").unlink()
    (interrupted.path / "checkpoints" / "last.keras").write_bytes(b"x")  # a completed epoch, no evaluation yet
    dead = experiments.find_run(configs[3])
    (dead.path / "info.json").unlink()  # killed before its first checkpoint: trained again
    assert [c.subset for c in configs if experiments.run_all([c], None)] == [5, 10, 100]  # report only: no training
    assert calls == []
    done = experiments.run_all(configs, fake_train)
    assert calls == [(25, interrupted.run_id), (50, None)]
    assert done[2] == interrupted and len(done) == 5
    other = configs[0].replace(lr=0.001)  # a different recipe is a different run
    assert experiments.find_run(other) is None
    demo = configs[4].replace(seed=7, demo=True)  # what `train.py --demo --seed 7` saves: the same run as the plan's
    experiments.run_all([demo], fake_train)
    assert experiments.find_run(configs[4].replace(seed=7)) is not None


def test_data_efficiency_and_mixstyle_end_to_end(data_config, shards_dir, tmp_path, capsys):
    from asc_tf.experiments import main

    os.environ.setdefault("WANDB_SILENT", "true")
    flags = ["--seeds", "1", "--n_epochs", "1", "--batch_size", "16", "--warmup_steps", "2",
             "--dataset_dir", data_config.dataset_dir, "--tfrecords_dir", data_config.tfrecords_dir,
             "--clips_per_shard", str(data_config.clips_per_shard), "--num_workers", "1", "--wandb", "disabled",
             "--project_dir", str(tmp_path)]
    root = tmp_path / "DCASE24_Task1"
    assert main(["data_efficiency", *flags]) == 0
    first = capsys.readouterr().out
    runs = _runs(root)
    assert len(runs) == 5 and all((r / "info.json").is_file() for r in runs)
    assert sorted(json.loads((r / "config.json").read_text())["subset"] for r in runs) == [5, 10, 25, 50, 100]
    table = (tmp_path / "experiments" / "data_efficiency.md").read_text()
    assert table in first and (tmp_path / "experiments" / "data_efficiency.png").stat().st_size > 10_000
    rows = [line for line in table.splitlines() if line.startswith("| ") and "%" in line.split("|")[1]]
    assert [r.split("|")[1].strip() for r in rows[:5]] == ["5%", "10%", "25%", "50%", "100%"]

    # interrupt split 50 after its training (evaluation lost): the next call resumes that very run
    split50 = next(r for r in runs if json.loads((r / "config.json").read_text())["subset"] == 50)
    stamp = {r: (r / "info.json").stat().st_mtime_ns for r in runs}
    (split50 / "info.json").unlink()
    assert main(["data_efficiency", *flags]) == 0
    assert _runs(root) == runs and (split50 / "info.json").is_file()
    assert all((r / "info.json").stat().st_mtime_ns == stamp[r] for r in runs if r != split50)  # skipped
    assert (tmp_path / "experiments" / "data_efficiency.md").read_text() == table  # same runs, same table

    # mixstyle: the 0.4 arm is data efficiency's split-100 run; only the 0 arm is trained
    capsys.readouterr()
    assert main(["mixstyle", *flags]) == 0
    assert len(_runs(root)) == 6
    text = (tmp_path / "experiments" / "mixstyle.md").read_text()
    assert "| mixstyle_p 0.4 | 1 |" in text and "| mixstyle_p 0 | 1 |" in text and "Paired difference" in text


def test_demo_refuses_a_demo_dataset_of_another_profile(tmp_path, monkeypatch):
    """An existing data/synthetic of the easy profile (or made before profiles existed) is never reused silently
    for a tau run, nor overwritten: one error says what to do."""
    from asc_tf.data import synthetic
    from asc_tf.training.demo import demo_config
    from asc_tf.training.runs import RunError

    monkeypatch.chdir(tmp_path)
    dev = tmp_path / "data" / "synthetic" / synthetic.DEV_DIR_NAME
    dev.mkdir(parents=True)
    (dev / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n")
    with pytest.raises(RunError, match="holds the 'easy' synthetic dataset, not 'tau'"):
        demo_config(Config(synthetic_difficulty="tau"))
    assert demo_config(Config(synthetic_difficulty="easy")).dataset_dir == str(Path("data/synthetic") / dev.name)
    (dev.parent / synthetic.DESCRIPTION_NAME).write_text('{"seed": 0, "size": "medium", "difficulty": "tau"}')
    assert demo_config(Config(synthetic_difficulty="tau")).seed == 0


def _summary(runs: list[int]):
    import pandas as pd

    splits = ["5%", "10%", "25%", "50%", "100%"][:len(runs)]
    data = {"runs": runs}
    for i, title in enumerate(("macro", "device A", "seen", "unseen")):
        data[f"{title} mean"] = [10.0 + 10 * i + k for k in range(len(runs))]
        data[f"{title} std"] = [float("nan") if n == 1 else 1.5 for n in runs]
    return pd.DataFrame(data, index=splits)


@pytest.mark.parametrize("runs, title, bars", [
    ([1, 1, 1, 1, 1], "Data efficiency (one seed: no spread)", False),
    ([3, 3, 3, 3, 3], "Data efficiency (mean ± std over 3 seeds)", True),
    ([2, 3, 3, 3, 3], "Data efficiency (mean ± std over 2-3 seeds)", True),
])
def test_data_efficiency_picture_says_how_many_seeds(runs, title, bars):
    """One seed per split: the title says there is no spread (not "over 1+ seeds") and no zero-height error bars
    are drawn; the x axis has one tick per split, no unlabelled minor ticks."""
    figure = experiments.data_efficiency_figure(_summary(runs))
    ax = figure.axes[0]
    assert ax.get_title() == title
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5%", "10%", "25%", "50%", "100%"]
    assert list(ax.xaxis.get_minorticklocs()) == []
    error_bars = [container for container in ax.containers if container.has_yerr]
    assert len(error_bars) == (3 if bars else 0)  # macro, device A, unseen
