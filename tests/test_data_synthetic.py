"""The synthetic TAU-layout dataset: layout, device structure, determinism, learnability."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asc_tf.data import synthetic
from asc_tf.data.meta import CLASSES, DEVICES, read_file_list, read_meta
from asc_tf.data.splits import load_splits

NAME = re.compile(r"^audio/([a-z_]+)-([a-z]+)-(\d+)-(\d+)-(\d+)-(a|b|c|s[1-6])\.wav$")


def test_development_layout_is_taus(dataset_dir):
    meta = read_meta(dataset_dir / "meta.csv")
    assert (dataset_dir / "meta.csv").read_text().splitlines()[0] == "filename\tscene_label\tidentifier\tsource_label"
    audio = sorted(p.name for p in (dataset_dir / "audio").iterdir())
    assert audio == sorted(f[len("audio/"):] for f in meta["filename"])
    for row in meta.itertuples():
        match = NAME.match(row.filename)
        assert match, row.filename
        scene, city, location, _, clip, device = match.groups()
        assert (scene, f"{city}-{location}", device) == (row.scene_label, row.identifier, row.source_label)
    info = sf.info(str(dataset_dir / meta["filename"].iloc[0]))
    assert (info.samplerate, info.channels, info.frames, info.subtype, info.format) == (44100, 1, 44100, "PCM_24", "WAV")
    assert set(meta["scene_label"]) == set(CLASSES)


def test_device_structure_and_recordings_kept_together(dataset_dir):
    meta = read_meta(dataset_dir / "meta.csv").set_index("filename")
    splits = load_splits(meta.reset_index(), dataset_dir / "split_setup")
    train = meta.loc[splits["split100"]]
    test = meta.loc[splits["test"]]
    assert set(train["device"]) <= {"a", "b", "c", "s1", "s2", "s3"}
    counts = train["device"].value_counts()
    assert counts.index[0] == "a" and counts["a"] > train.shape[0] / 2  # device a dominates training
    assert set(test["device"]) == set(DEVICES)  # every device in test, unseen s4-s6 included
    recording = lambda files: {f.rsplit("-", 2)[0] for f in files}  # noqa: E731 (scene-city-loc-segment)
    for small, large in [(5, 10), (10, 25), (25, 50), (50, 100)]:
        outside = set(splits[f"split{large}"]) - set(splits[f"split{small}"])
        assert not recording(splits[f"split{small}"]) & recording(outside)  # a recording is never cut
    assert not recording(splits["split100"]) & recording(splits["test"])


@pytest.mark.parametrize("size", ["small", "medium"])
def test_nested_splits_spread_over_the_scenes(size):
    """Each split takes its recordings round robin over the scenes: nested, its share of the recordings, no
    scene twice before every scene once (split 10 of medium holds all ten scenes)."""
    train = [r for r in synthetic.plan_recordings(synthetic.SIZES[size], seed=3) if r.part == "train"]
    tiers = synthetic.nested_tiers(train, seed=3)
    for n in synthetic.SUBSETS:
        chosen = [r for r in train if tiers[r] <= n]
        assert len(chosen) == max(1, round(len(train) * n / 100))
        per_scene = [sum(r.scene == scene for r in chosen) for scene in CLASSES]
        assert max(per_scene) - min(per_scene) <= 1, (n, per_scene)
    if size == "medium":
        assert {r.scene for r in train if tiers[r] <= 10} == set(CLASSES)


def test_evaluation_folder_layout_without_labels(synthetic_root):
    eval_dir = synthetic_root / synthetic.EVAL_DIR_NAME
    files = read_file_list(eval_dir / "evaluation_setup" / "fold1_test.csv")
    assert list(files.columns) == ["filename", "_line"]  # no labels in the evaluation set
    assert all((eval_dir / f).is_file() for f in files["filename"])
    labels = pd.read_csv(synthetic_root / synthetic.EVAL_LABELS_NAME, sep="\t")
    assert list(labels["filename"]) == list(files["filename"])


def _tree_digest(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_deterministic_for_a_seed(synthetic_root, tmp_path):
    synthetic.generate(tmp_path / "same", seed=0, size="tiny", difficulty="easy")
    synthetic.generate(tmp_path / "other", seed=1, size="tiny", difficulty="easy")
    assert _tree_digest(tmp_path / "same") == _tree_digest(synthetic_root)
    assert _tree_digest(tmp_path / "other") != _tree_digest(synthetic_root)


def test_refuses_to_overwrite_and_cli_reports_one_line(synthetic_root):
    result = subprocess.run([sys.executable, "-m", "asc_tf.data.synthetic", "--out", str(synthetic_root), "--size", "tiny"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "already holds audio" in result.stderr


def _band_energies(path) -> np.ndarray:
    x, _ = sf.read(str(path))
    frames = x[:44032].reshape(43, 1024) * np.hanning(1024)
    power = (np.abs(np.fft.rfft(frames)) ** 2).mean(0)
    edges = np.unique(np.geomspace(1, 513, 41).astype(int))
    return np.log([power[a:b].mean() + 1e-12 for a, b in zip(edges[:-1], edges[1:])])


def _ridge_on_band_energies(tmp_path, difficulty: str) -> tuple[np.ndarray, np.ndarray]:
    """A ridge classifier on band energies of the `small` set (seed 3), trained on split 100: per test clip,
    whether it was right and its device."""
    root = synthetic.generate(tmp_path, seed=3, size="small", difficulty=difficulty)["development"]
    meta = read_meta(root / "meta.csv").set_index("filename")
    splits = load_splits(meta.reset_index(), root / "split_setup")
    x_train = np.stack([_band_energies(root / f) for f in splits["split100"]])
    x_test = np.stack([_band_energies(root / f) for f in splits["test"]])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    targets = np.eye(10)[meta.loc[splits["split100"], "label"]]
    weights = np.linalg.solve(x_train.T @ x_train + np.eye(x_train.shape[1]), x_train.T @ targets)
    correct = (x_test @ weights).argmax(1) == meta.loc[splits["test"], "label"].to_numpy()
    device = meta.loc[splits["test"], "device"].to_numpy()
    return correct, device


def test_scenes_learnable_from_spectra_but_devices_matter(tmp_path):
    """A linear classifier on band energies learns the scenes well above chance, yet not perfectly, and
    it does worse on the unseen devices than on device a: the device mismatch is real."""
    correct, device = _ridge_on_band_energies(tmp_path, "easy")
    assert 0.4 < correct.mean() < 0.98, correct.mean()
    assert correct[device == "a"].mean() > correct[np.isin(device, ["s4", "s5", "s6"])].mean()


# ---------------------------------------------------------------------------------------------- tau profile
TAU_TEST_SIZE = synthetic.Size(1, 1, 1, 1, 2, 0.5, 3)  # 30 recordings of 2 s: quick, all parts present


def test_tau_profile_is_deterministic_whatever_the_workers_and_differs_from_easy(tmp_path):
    synthetic.generate(tmp_path / "one", seed=0, size=TAU_TEST_SIZE, difficulty="tau", workers=1)
    synthetic.generate(tmp_path / "two", seed=0, size=TAU_TEST_SIZE, difficulty="tau", workers=2)
    synthetic.generate(tmp_path / "easy", seed=0, size=TAU_TEST_SIZE, difficulty="easy", workers=1)
    assert _tree_digest(tmp_path / "one") == _tree_digest(tmp_path / "two")
    names = lambda root: sorted(p.name for p in root.rglob("*.wav"))  # noqa: E731
    assert names(tmp_path / "one") == names(tmp_path / "easy")  # same layout, other audio
    assert _tree_digest(tmp_path / "one") != _tree_digest(tmp_path / "easy")
    assert synthetic.read_description(tmp_path / "one") == {"seed": 0, "size": None, "difficulty": "tau"}
    with pytest.raises(ValueError, match="unknown difficulty"):
        synthetic.generate(tmp_path / "bad", size="tiny", difficulty="hard")


def test_tau_devices_are_harsh_and_unseen_ones_harsher():
    """Seen devices tilt or notch the spectrum by about 10 dB and more over 100 Hz-8 kHz alone; unseen ones more
    so, with narrower bands; device a stays nearly flat."""
    from asc_tf.data import synthetic_tau

    freqs = np.geomspace(100, 8000, 400)
    spread = {d: np.ptp(synthetic_tau.device_response_db(d, freqs)) for d in DEVICES}
    assert spread["a"] < 6
    assert min(spread[d] for d in ("b", "c", "s1", "s2", "s3")) >= 9
    assert np.mean([spread[d] for d in ("s4", "s5", "s6")]) > np.mean([spread[d] for d in ("b", "c", "s1", "s2", "s3")])
    models = synthetic_tau.DEVICE_MODELS
    seen, unseen = ("b", "c", "s1", "s2", "s3"), ("s4", "s5", "s6")
    assert np.mean([models[d].lowpass_hz for d in unseen]) < np.mean([models[d].lowpass_hz for d in seen])
    assert np.mean([models[d].noise_dbfs for d in unseen]) > np.mean([models[d].noise_dbfs for d in seen])


def test_tau_neighbouring_scenes_share_their_sources():
    """bus / tram / metro and street_pedestrian / public_square are closer to each other than to other scenes."""
    from asc_tf.data import synthetic_tau

    levels = {k: np.maximum(v, -40.0) for k, v in synthetic_tau.SCENE_DB.items()}
    dist = lambda a, b: float(np.sqrt(np.mean((levels[a] - levels[b]) ** 2)))  # noqa: E731
    assert max(dist("bus", "tram"), dist("tram", "metro")) < min(dist("bus", s) for s in ("park", "airport"))
    assert dist("street_pedestrian", "public_square") < min(dist("street_pedestrian", s) for s in ("metro", "park"))


def test_tau_profile_is_much_harder_than_easy(tmp_path):
    """The ridge classifier that reaches ~78 % on the easy `small` set stays far lower on the tau one, and the
    unseen devices are harder than device a."""
    correct, device = _ridge_on_band_energies(tmp_path, "tau")
    print(f"tau small ridge: {correct.mean():.3f}, a {correct[device == 'a'].mean():.3f}, "
          f"unseen {correct[np.isin(device, ['s4', 's5', 's6'])].mean():.3f}")
    assert correct.mean() < 0.45, correct.mean()
    assert correct[device == "a"].mean() > correct[np.isin(device, ["s4", "s5", "s6"])].mean() + 0.05
