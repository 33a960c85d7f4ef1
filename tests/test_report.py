"""Run reports: results.md, info.json (strict JSON, upstream's layout), PNGs, and the mean ± std aggregate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from asc_tf import report as report_cli
from asc_tf.data.meta import CLASSES, DEVICES
from asc_tf.training.metrics import METRIC_NAMES, MetricsAccumulator
from asc_tf.training.report import (CLASS_COLUMNS, DEVICE_COLUMNS, INFO_FILE, ReportError, aggregate,
                                    aggregate_markdown, load_run, plot_training_curves, read_info_json,
                                    write_info_json, write_run_report)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_run(seed: int, absent: tuple[str, ...] = ("s6",)) -> MetricsAccumulator:
    """Metrics of random, somewhat accurate predictions on 120 clips; devices in `absent` never occur."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=120)
    logits = rng.normal(size=(120, 10)) + 2.0 * np.eye(10)[labels]
    devices = rng.choice([d for d in DEVICES if d not in absent], size=120)
    acc = MetricsAccumulator()
    for s in range(0, 120, 50):
        acc.update(logits[s:s + 50], labels[s:s + 50], devices=devices[s:s + 50])
    return acc


def strict_loads(text: str):
    """json.loads that refuses NaN/Infinity tokens (which are not JSON)."""
    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000, path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_run_report_files(tmp_path):
    acc = fake_run(0)
    metrics = acc.compute()
    history = {"train/loss": [2.3, 1.9, 1.5], "val/loss": [2.2, 1.8, float("nan")],
               "val/macro_avg_acc": [0.2, 0.3, 0.4]}          # no "lr": tolerated
    written = write_run_report(tmp_path / "run1", metrics, acc.confusion, history=history, macs=29_419_156,
                               params=61_148, label="25%")
    assert set(written) == {"results.md", "info.json", "confusion_matrix.png", "device_accuracy.png",
                            "training_curves.png"}
    for name in ("confusion_matrix.png", "device_accuracy.png", "training_curves.png"):
        check_png(tmp_path / "run1" / name)
    assert not list((tmp_path / "run1").glob(".*.tmp"))      # atomic writes left nothing behind

    text = (tmp_path / "run1" / "results.md").read_text()
    assert "| Split | Airport | Bus | Metro | Metro Station |" in text and "| Macro Avg Acc |" in text
    assert "| Split | A | B | C | S1 | S2 | S3 | S4 | S5 | S6 | Real | Seen | Unseen |" in text
    class_row = "| 25% | " + " | ".join(f"{100 * metrics['acc.' + c]:.2f}" for c in CLASSES) \
        + f" | {100 * metrics['macro_avg_acc']:.2f} |"
    assert class_row in text
    device_cells = [f"{100 * metrics['acc.' + d]:.2f}" if d != "s6" else "n/a" for d in DEVICES]
    assert "| 25% | " + " | ".join(device_cells) + " | " in text


def test_info_json_is_strict_and_upstreams_layout(tmp_path):
    metrics = fake_run(1).compute()
    assert math.isnan(metrics["acc.s6"])
    path = write_info_json(tmp_path / "info.json", metrics, macs=29_419_156, params=61_148,
                           extra={"test_float32": {"test/acc": np.float32(0.5), "test/acc.s6": float("nan")}})
    data = strict_loads(path.read_text())
    assert data["MACs"] == 29_419_156 and data["Params"] == 61_148
    assert isinstance(data["MACs"], int) and isinstance(data["Params"], int)
    assert isinstance(data["test"], list) and len(data["test"]) == 1
    assert list(data["test"][0]) == [f"test/{k}" for k in METRIC_NAMES]
    assert data["test"][0]["test/acc.s6"] is None and data["test_float32"]["test/acc.s6"] is None
    assert data["test"][0]["test/acc"] == pytest.approx(metrics["acc"])
    back = read_info_json(path)
    assert list(back) == list(METRIC_NAMES)
    for key in METRIC_NAMES:
        assert (math.isnan(back[key]) and math.isnan(metrics[key])) or back[key] == metrics[key], key


def test_reads_upstreams_own_nan_info_json(tmp_path):
    test = {f"test/{k}": 0.5 for k in METRIC_NAMES}
    path = tmp_path / "info.json"
    path.write_text(json.dumps({"MACs": 1, "Params": 2, "test": [{**test, "test/acc.s5": float("nan")}]}))
    assert "NaN" in path.read_text()
    assert math.isnan(read_info_json(path)["acc.s5"])


def test_training_curves_without_history(tmp_path):
    check_png(plot_training_curves({}, tmp_path / "curves.png"))


def make_runs(project: Path) -> dict[str, list[dict[str, float]]]:
    """Three runs of split 25 and two of split 5 (one run id given without config: 'all')."""
    made: dict[str, list[dict[str, float]]] = {"25%": [], "5%": []}
    for i, (split, seed) in enumerate([("25%", 10), ("25%", 11), ("25%", 12), ("5%", 20), ("5%", 21)]):
        run_dir = project / f"run{i}"
        absent = ("s6",) if i != 1 else ("s5", "s6")             # s5 missing in one run: skipped, not NaN
        metrics = fake_run(seed, absent).compute()
        write_info_json(run_dir / INFO_FILE, metrics, macs=1, params=2)
        (run_dir / "config.json").write_text(json.dumps({"subset": int(split[:-1]), "seed": seed}))
        made[split].append(metrics)
    return made


def test_aggregate_mean_std_equal_numpy(tmp_path):
    made = make_runs(tmp_path)
    results = [load_run(f"run{i}", project_dir=tmp_path) for i in range(5)]
    assert [r.split for r in results] == ["25%"] * 3 + ["5%"] * 2
    for columns in (CLASS_COLUMNS, DEVICE_COLUMNS):
        mean, std, size = aggregate(results, columns)
        assert list(mean.index) == ["25%", "5%"] and list(size) == [3, 2]
        for split, runs in made.items():
            for key, title in columns.items():
                values = 100 * np.array([m[key] for m in runs])
                values = values[~np.isnan(values)]
                if values.size == 0:
                    assert math.isnan(mean.loc[split, title])
                    continue
                assert mean.loc[split, title] == pytest.approx(np.mean(values), rel=1e-12)
                if values.size > 1:
                    assert std.loc[split, title] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    text = aggregate_markdown(results)
    macro = 100 * np.array([m["macro_avg_acc"] for m in made["25%"]])
    assert f"{macro.mean():.2f} ± {macro.std(ddof=1):.2f}" in text
    assert "| Split | Runs | Macro Avg Acc | Accuracy |" in text
    assert "| Split | A | B | C | S1 | S2 | S3 | S4 | S5 | S6 | Real | Seen | Unseen |" in text


def test_cli_prints_and_writes(tmp_path, capsys):
    make_runs(tmp_path)
    out = tmp_path / "summary.md"
    code = report_cli.main(["run0", str(tmp_path / "run1"), str(tmp_path / "run2" / INFO_FILE),
                            "--project_dir", str(tmp_path), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "± " in printed and "| 25% | 3 |" in printed
    assert out.read_text().strip() == printed.strip()


def test_split_of_an_evaluation_folder_comes_from_the_run(tmp_path):
    make_runs(tmp_path)
    evaluation = tmp_path / "predictions" / "run3"
    write_info_json(evaluation / INFO_FILE, fake_run(5).compute(), macs=1, params=2)
    assert load_run(evaluation, project_dir=tmp_path).split == "5%"
    assert load_run(evaluation, project_dir=tmp_path / "elsewhere").split == "all"


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    ('{"MACs": 1, "Params": 2, "test": {}}', "layout"),
    ('{"MACs": 1, "Params": 2, "test": [{"test/acc": 0.5}]}', "metrics missing"),
])
def test_bad_info_json_gives_one_clear_line(tmp_path, capsys, content, message):
    run_dir = tmp_path / "bad"
    run_dir.mkdir()
    if content is not None:
        (run_dir / INFO_FILE).write_text(content)
    with pytest.raises(ReportError, match=message) as err:
        load_run(run_dir)
    assert str(run_dir / INFO_FILE) in str(err.value) and isinstance(err.value, ValueError)
    assert report_cli.main([str(run_dir)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(run_dir / INFO_FILE) in lines[0]


def test_unknown_run_id(tmp_path, capsys):
    assert report_cli.main(["nope", "--project_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run 'nope' not found") and "\n" not in err


def test_run_ids_under_project_dir_as_train_py_writes_them(tmp_path, capsys):
    """`--project_dir` means what it means for train.py (runs in <project_dir>/<project_name>/<id>)."""
    make_runs(tmp_path / "DCASE24_Task1")
    assert report_cli.main(["run0", "run1", "run2", "--project_dir", str(tmp_path)]) == 0
    assert "| 25% | 3 |" in capsys.readouterr().out
    assert report_cli.main(["run0", "--project_dir", str(tmp_path), "--project_name", "other"]) == 2
    assert "run 'run0' not found" in capsys.readouterr().err
