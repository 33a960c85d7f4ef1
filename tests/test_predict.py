"""predict.py: upstream's output.csv for the evaluation set, info.json, atomic writes, bad inputs."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asc_tf.data.audio import load_clip
from asc_tf.data.meta import CLASSES
from asc_tf.data.synthetic import EVAL_DIR_NAME
from asc_tf.predict import PredictionError, find_evaluation_set, predict_evaluation_set

HEADER = ["filename", "scene_label", *CLASSES]


@pytest.fixture(scope="module")
def run_predictions(trained_run, synthetic_root):
    config = trained_run.run.load_config()
    path = predict_evaluation_set(config, ckpt_id=trained_run.run.run_id, progress=False)
    return path, config


def test_output_csv_is_upstreams_format(run_predictions, synthetic_root):
    path, _ = run_predictions
    assert path.read_text().splitlines()[0] == "\t".join(HEADER)
    frame = pd.read_csv(path, sep="\t")
    listed = pd.read_csv(synthetic_root / EVAL_DIR_NAME / "evaluation_setup" / "fold1_test.csv", sep="\t")
    assert list(frame.columns) == HEADER
    assert list(frame["filename"]) == [f[len("audio/"):] for f in listed["filename"]]  # list order, no audio/
    probabilities = frame[list(CLASSES)].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert list(frame["scene_label"]) == [CLASSES[i] for i in probabilities.argmax(axis=1)]


def test_info_json_and_model_copy(run_predictions, trained_run):
    path, _ = run_predictions
    info = json.loads((path.parent / "info.json").read_text())
    assert (info["MACs"], info["Params"]) == (29419156, 61148)
    assert info["test"][0]["test/macro_avg_acc"] == pytest.approx(trained_run.metrics["test/macro_avg_acc"])
    assert (path.parent / "model.keras").is_file()
    assert not [p for p in path.parent.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_existing_prediction_is_kept_without_overwrite(run_predictions, trained_run):
    path, config = run_predictions
    before = path.read_bytes()
    with pytest.raises(PredictionError, match="output.csv exists: pass --overwrite"):
        predict_evaluation_set(config, ckpt_id=trained_run.run.run_id, progress=False)
    assert path.read_bytes() == before  # untouched
    (path.parent / "output.csv").write_text("stale")
    predict_evaluation_set(config.replace(overwrite=True), ckpt_id=trained_run.run.run_id, progress=False)
    again = pd.read_csv(path, sep="\t")  # replaced whole (float16 kernels may differ in the last digit)
    first = pd.read_csv(io.BytesIO(before), sep="\t")
    assert list(again["filename"]) == list(first["filename"])
    np.testing.assert_allclose(again[list(CLASSES)], first[list(CLASSES)], atol=1e-3)
    assert not [p for p in path.parent.parent.iterdir() if p.name.startswith(".")]


@pytest.fixture()
def eval_copy(synthetic_root, tmp_path):
    target = tmp_path / EVAL_DIR_NAME
    shutil.copytree(synthetic_root / EVAL_DIR_NAME, target)
    return target


def _predict_into(tmp_path, trained_run, eval_dir):
    config = trained_run.run.load_config().replace(project_dir=str(tmp_path / "project"))
    shutil.copytree(trained_run.run.path.parent, tmp_path / "project" / "DCASE24_Task1")
    return predict_evaluation_set(config, ckpt_id=trained_run.run.run_id, eval_dir=eval_dir, progress=False)


@pytest.mark.parametrize("damage, message", [
    ("missing", r"audio/3.wav: listed in .*fold1_test.csv but missing on disk: restore the file or remove its row"),
    ("corrupt", r"audio/3.wav: cannot read audio"),
    ("long", r"audio/3.wav: 2 s long, expected 1 s"),
])
def test_bad_clip_names_the_file_and_leaves_nothing(trained_run, eval_copy, tmp_path, damage, message):
    clip = eval_copy / "audio" / "3.wav"
    if damage == "missing":
        clip.unlink()
    elif damage == "corrupt":
        clip.write_bytes(b"RIFFnot a wav")
    else:
        sf.write(str(clip), np.zeros(96000), 48000, subtype="PCM_16")  # 48 kHz resamples fine, but 2 s long
    with pytest.raises(Exception, match=message):
        _predict_into(tmp_path, trained_run, eval_copy)
    predictions = tmp_path / "project" / "predictions"
    assert not predictions.exists() or not any(predictions.iterdir())


def test_other_sample_rates_are_resampled(trained_run, eval_copy, tmp_path):
    clip = eval_copy / "audio" / "0.wav"
    data, _ = sf.read(str(clip))
    from asc_tf.data.resample import resample

    sf.write(str(clip), resample(data.astype(np.float32), 44100, 48000), 48000, subtype="PCM_24")
    frame = pd.read_csv(_predict_into(tmp_path, trained_run, eval_copy), sep="\t")
    assert frame["filename"].iloc[0] == "0.wav"


def test_empty_or_missing_file_list(eval_copy, tmp_path):
    listing = eval_copy / "evaluation_setup" / "fold1_test.csv"
    listing.write_text("filename\n")
    with pytest.raises(PredictionError, match="fold1_test.csv: the file list is empty"):
        find_evaluation_set(eval_copy, None)
    listing.unlink()
    with pytest.raises(PredictionError, match="no evaluation file list in"):
        find_evaluation_set(eval_copy, None)


def test_cli_one_line_errors(tmp_path, capsys):
    import predict as predict_script

    code = predict_script.main(["--ckpt_id", "nope", "--project_dir", str(tmp_path)])
    assert code == 2 and capsys.readouterr().err.strip().splitlines()[-1].startswith("error: unknown run id 'nope'")
    with pytest.raises(SystemExit):
        predict_script.main([])  # one of --ckpt_id, --model, --tflite is required


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_bundle_predictions(request, run_predictions, synthetic_root, precision):
    """predict --tflite writes what ships: the bundle's own TFLite front end + network give the same classes
    (the edge runtime's numpy front end is within 3e-6 of it on the log-mel), and the fp16 bundle predicts the
    evaluation set as the checkpoint does on at least 99 % of the clips (the issue's figure)."""
    from asc_tf.export.bundle import load_bundle

    bundle = request.getfixturevalue(f"{precision}_export")
    path, config = run_predictions
    shipped = predict_evaluation_set(config.replace(dataset_dir=None), bundle=bundle.path, progress=False)
    assert shipped.parent.name == bundle.path.name
    ours, theirs = (pd.read_csv(p, sep="\t") for p in (path, shipped))
    assert list(ours["filename"]) == list(theirs["filename"])
    if precision == "fp16":
        agreement = float(np.mean(ours["scene_label"] == theirs["scene_label"]))
        assert agreement >= 0.99, agreement
    tflite = load_bundle(bundle.path).classifier()
    eval_dir = synthetic_root / EVAL_DIR_NAME
    direct = [CLASSES[int(np.argmax(tflite.logits(load_clip(eval_dir / "audio" / f, 44100, 32000))))]
              for f in theirs["filename"]]
    assert np.mean(np.array(direct) == theirs["scene_label"].to_numpy()) >= 119 / 120  # a near tie may flip
    info = json.loads((shipped.parent / "info.json").read_text())
    assert info["MACs"] == 29416448 and info["precision"] == precision
    assert (shipped.parent / f"network_{precision}.tflite").is_file()


def test_evaluate_after_predict_keeps_its_output_and_adds_the_dev_test_report(trained_run, tmp_path, capsys):
    """The two "next" commands in either order: predict.py then train.py --evaluate is not refused; the output.csv
    predict.py made from the same model and set is kept, and info.json holds both commands' records."""
    import predict as predict_script
    import train as train_script

    project = tmp_path / "project"
    shutil.copytree(trained_run.run.path, project / "DCASE24_Task1" / trained_run.run.run_id,
                    ignore=shutil.ignore_patterns("wandb"))
    run_id = trained_run.run.run_id
    assert predict_script.main(["--ckpt_id", run_id, "--project_dir", str(project)]) == 0
    out_dir = project / "predictions" / run_id
    predicted = (out_dir / "output.csv").read_bytes()
    capsys.readouterr()  # predict.py's own lines
    assert train_script.main(["--evaluate", "--ckpt_id", run_id, "--project_dir", str(project)]) == 0
    captured = capsys.readouterr()
    assert f"evaluation set predictions: {out_dir / 'output.csv'}" in captured.out
    # it says it kept the file, and why; it does not announce a prediction it then skips
    assert f"kept {out_dir / 'output.csv'}: it was predicted from the same model" in captured.err
    assert "predicting" not in captured.err
    assert (out_dir / "output.csv").read_bytes() == predicted  # kept, not recomputed nor refused
    for name in ("results.md", "device_accuracy.png", "confusion_matrix.png", "model.keras"):
        assert (out_dir / name).is_file(), name
    info = json.loads((out_dir / "info.json").read_text())
    assert info["output"]["precision"].startswith("float32 front end, float16 network")
    assert info["output"]["model"].endswith("model.keras") and len(info["output"]["model_sha256"]) == 64
    assert "val" in info and info["test"][0]["test/macro_avg_acc"] == pytest.approx(
        trained_run.metrics["test/macro_avg_acc"], abs=1e-6)
    # a second evaluation asks first; so does predict.py over an output.csv that exists
    assert train_script.main(["--evaluate", "--ckpt_id", run_id, "--project_dir", str(project)]) == 2
    assert "results.md exists" in capsys.readouterr().err
    assert predict_script.main(["--ckpt_id", run_id, "--project_dir", str(project)]) == 2
    assert "output.csv exists: pass --overwrite" in capsys.readouterr().err


def test_a_failed_evaluation_leaves_no_predictions_folder(trained_run, tmp_path, capsys):
    """--evaluate of a run whose dataset is gone fails in one line and leaves no empty predictions/<id>/."""
    import train as train_script

    project = tmp_path / "project"
    run_dir = project / "DCASE24_Task1" / trained_run.run.run_id
    shutil.copytree(trained_run.run.path, run_dir, ignore=shutil.ignore_patterns("wandb"))
    config = json.loads((run_dir / "config.json").read_text())
    config.update(dataset_dir=str(tmp_path / "gone"), tfrecords_dir=str(tmp_path / "no_tfrecords"))
    (run_dir / "config.json").write_text(json.dumps(config))
    assert train_script.main(["--evaluate", "--ckpt_id", trained_run.run.run_id, "--project_dir", str(project)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("error: ")] == err[-1:] and str(tmp_path / "gone") in err[-1], err
    assert not (project / "predictions" / trained_run.run.run_id).exists()


def test_evaluate_alone_writes_upstreams_output_csv(trained_run, tmp_path, synthetic_root):
    import train as train_script

    project = tmp_path / "project"
    shutil.copytree(trained_run.run.path, project / "DCASE24_Task1" / trained_run.run.run_id,
                    ignore=shutil.ignore_patterns("wandb"))
    assert train_script.main(["--evaluate", "--ckpt_id", trained_run.run.run_id, "--project_dir", str(project)]) == 0
    frame = pd.read_csv(project / "predictions" / trained_run.run.run_id / "output.csv", sep="\t")
    listed = pd.read_csv(synthetic_root / EVAL_DIR_NAME / "evaluation_setup" / "fold1_test.csv", sep="\t")
    assert list(frame.columns) == HEADER and len(frame) == len(listed)


def test_one_precision_rule_for_keras_models(run_predictions, trained_run, tmp_path):
    """--model predicts as --ckpt_id does (float16 network, upstream's model.half()), not in float32."""
    path, config = run_predictions
    by_file = predict_evaluation_set(config.replace(project_dir=str(tmp_path)), model_path=trained_run.run.final_model,
                                     progress=False)
    ours, theirs = (pd.read_csv(p, sep="\t") for p in (path, by_file))
    np.testing.assert_allclose(ours[list(CLASSES)], theirs[list(CLASSES)], atol=1e-6)
    info = json.loads((by_file.parent / "info.json").read_text())
    assert info["output"]["precision"] == json.loads((path.parent / "info.json").read_text())["output"]["precision"]
