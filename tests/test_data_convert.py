"""TFRecord conversion: round trip, layout by tier, resume, stale sources, bad files, storage precision."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from asc_tf.data.audio import AudioFileError, load_clip
from asc_tf.data.convert import (MANIFEST, PROGRESS, SKIPPED, ConversionError, StaleShardsError, convert_dataset,
                                 decode_waveform, encode_waveform)
from asc_tf.data.meta import read_meta
from asc_tf.data.splits import load_splits


def read_records(path: Path) -> list[dict]:
    out = []
    for record in tf.data.TFRecordDataset(str(path)):
        example = tf.train.Example.FromString(record.numpy())
        feature = example.features.feature
        out.append({
            "waveform": feature["waveform"].bytes_list.value[0],
            "label": feature["label"].int64_list.value[0],
            "filename": feature["filename"].bytes_list.value[0].decode(),
            "device": feature["device"].bytes_list.value[0].decode(),
            "city": feature["city"].bytes_list.value[0].decode(),
        })
    return out


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tfrecord"))}


def test_manifest_counts_and_tier_layout(shards_dir, dataset_dir):
    manifest = json.loads((shards_dir / MANIFEST).read_text())
    splits = load_splits(read_meta(dataset_dir / "meta.csv"), dataset_dir / "split_setup")
    assert manifest["splits"] == {name: len(files) for name, files in splits.items()}
    assert (manifest["sample_rate"], manifest["samples"], manifest["storage_dtype"]) == (32000, 32000, "float16")
    assert not (shards_dir / PROGRESS).exists() and manifest["skipped"] == 0
    stored = {}
    for tier, info in manifest["tiers"].items():
        assert len(info["shards"]) >= 1
        for entry in info["shards"]:
            assert entry["file"].startswith(tier + "-")
            for record in read_records(shards_dir / entry["file"]):
                assert record["filename"] not in stored, "a clip is stored twice"
                stored[record["filename"]] = tier
    small = {f for f, t in stored.items() if t in ("tier005", "tier010")}
    assert small == set(splits["split10"])
    assert {f for f, t in stored.items() if t == "test"} == set(splits["test"])


def test_wav_to_tfrecord_round_trip_within_float16_precision(shards_dir, dataset_dir):
    meta = read_meta(dataset_dir / "meta.csv").set_index("filename")
    entry = json.loads((shards_dir / MANIFEST).read_text())["tiers"]["test"]["shards"][0]
    records = read_records(shards_dir / entry["file"])
    for record in records[:12]:
        stored = decode_waveform(record["waveform"], "float16")
        expected = load_clip(dataset_dir / record["filename"], 44100, 32000)
        assert stored.shape == (32000,)
        # float16 keeps 11 significant bits: relative error <= 2**-11, plus subnormal spacing near 0
        assert np.all(np.abs(stored - expected) <= np.abs(expected) * 2.0**-11 + 2.0**-24)
        row = meta.loc[record["filename"]]
        assert (record["label"], record["device"], record["city"]) == (row["label"], row["device"], row["city"])


def _logmel(x: np.ndarray, golden: dict) -> np.ndarray:
    """Upstream's log-mel in numpy float64 from the golden window and filterbank (a reference only)."""
    window = np.zeros(4096)
    window[512:512 + 3072] = golden["mel.1.spectrogram.window"]
    padded = np.pad(x.astype(np.float64), ((0, 0), (2048, 2048)), mode="reflect")
    frames = padded[:, np.arange(65)[:, None] * 500 + np.arange(4096)[None]] * window
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return np.log(power @ golden["mel.1.mel_scale.fb"].astype(np.float64) + 1e-5)


def test_storage_dtype_log_mel_error(dataset_dir, golden):
    """The log-mel error each storage dtype causes on the synthetic clips (levels -45..-25 dBFS)."""
    files = sorted((dataset_dir / "audio").iterdir())[::20]
    clips = np.stack([load_clip(f, 44100, 32000) for f in files])
    reference = _logmel(clips, golden)
    errors = {}
    for dtype in ("float16", "int16", "float32"):
        stored = np.stack([decode_waveform(encode_waveform(c, dtype), dtype) for c in clips])
        errors[dtype] = np.abs(_logmel(stored, golden) - reference)
    assert errors["float32"].max() == 0.0
    assert errors["float16"].mean() < 2e-3 and np.percentile(errors["float16"], 99) < 0.03
    assert errors["float16"].mean() < errors["int16"].mean()  # why float16 is the default


def test_interrupted_conversion_resumes_to_the_same_result(data_config, shards_dir, tmp_path):
    config = data_config.replace(tfrecords_dir=str(tmp_path))
    out = convert_dataset(config, progress=False, max_new_shards=2)
    assert not (out / MANIFEST).exists() and len(list(out.glob("*.tfrecord"))) == 2
    (out / ".test-00000-of-00005.tfrecord.abc.tmp").write_bytes(b"half a shard")  # a kill mid-write
    progress = json.loads((out / PROGRESS).read_text())
    first = sorted(progress["done"])[0]
    (out / first).write_bytes(b"truncated")  # a shard damaged after it was recorded: redone
    convert_dataset(config, progress=False)
    assert shard_bytes(out) == shard_bytes(shards_dir)
    ours, reference = (json.loads((d / MANIFEST).read_text()) for d in (out, shards_dir))
    assert {k: v for k, v in ours.items() if k != "created"} == {k: v for k, v in reference.items() if k != "created"}


def test_finished_conversion_is_reused_and_a_changed_source_is_detected(data_config, dataset_dir, tmp_path):
    source = tmp_path / dataset_dir.name
    shutil.copytree(dataset_dir, source)
    config = data_config.replace(dataset_dir=str(source), tfrecords_dir=str(tmp_path / "tfr"))
    out = convert_dataset(config, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    convert_dataset(config, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps  # nothing rewritten
    clip = source / read_meta(source / "meta.csv")["filename"].iloc[0]
    data, sr = sf.read(str(clip))
    sf.write(str(clip), data * 0.5, sr, subtype="PCM_24")
    os.utime(clip, ns=(1, 1))
    with pytest.raises(StaleShardsError, match="different source.*--overwrite"):
        convert_dataset(config, progress=False)
    convert_dataset(config.replace(overwrite=True), progress=False)
    assert json.loads((out / MANIFEST).read_text())["fingerprint"] != ""


@pytest.mark.parametrize("damage, reason", [
    ("corrupt", "cannot read audio"),
    ("rate", "sample rate 48000 Hz, expected 44100 Hz"),
    ("stereo", "2 channels, expected mono"),
    ("short", "22050 samples, expected 44100"),
])
def test_bad_wav_is_reported_by_name_or_skipped_and_listed(data_config, dataset_dir, tmp_path, damage, reason):
    source = tmp_path / dataset_dir.name
    shutil.copytree(dataset_dir, source)
    bad = read_meta(source / "meta.csv")["filename"].iloc[3]
    path = source / bad
    if damage == "corrupt":
        path.write_bytes(b"RIFF\x00\x00garbage")
    elif damage == "rate":
        sf.write(str(path), np.zeros(48000), 48000, subtype="PCM_24")
    elif damage == "stereo":
        sf.write(str(path), np.zeros((44100, 2)), 44100, subtype="PCM_24")
    else:
        sf.write(str(path), np.zeros(22050), 44100, subtype="PCM_24")
    config = data_config.replace(dataset_dir=str(source), tfrecords_dir=str(tmp_path / "tfr"))
    with pytest.raises(AudioFileError, match=f"{bad}: {reason}.*--skip_bad"):
        convert_dataset(config, progress=False)
    out = convert_dataset(config.replace(skip_bad=True), progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    skipped = (out / SKIPPED).read_text().splitlines()
    assert manifest["skipped"] == 1 and len(skipped) == 2 and skipped[1].startswith(bad + "\t") and reason in skipped[1]
    stored = [r["filename"] for p in out.glob("*.tfrecord") for r in read_records(p)]
    assert bad not in stored and len(stored) == len(read_meta(source / "meta.csv")) - 1


def test_missing_dataset_is_one_clear_error(data_config, tmp_path):
    with pytest.raises(ConversionError, match="no TAU dataset at .*expected meta.csv"):
        convert_dataset(data_config.replace(dataset_dir=str(tmp_path / "nowhere")), progress=False)


def test_cli_parallel_conversion_equals_in_process_one(dataset_dir, shards_dir, tmp_path):
    command = [sys.executable, "-m", "asc_tf.data.convert", "--dataset_dir", str(dataset_dir),
               "--tfrecords_dir", str(tmp_path), "--clips_per_shard", "32", "--num_workers", "2", "--verify"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "split5" in result.stdout and "test" in result.stdout
    assert shard_bytes(tmp_path / dataset_dir.name) == shard_bytes(shards_dir)
    missing = subprocess.run([sys.executable, "-m", "asc_tf.data.convert", "--dataset_dir", str(tmp_path / "none")],
                             capture_output=True, text=True)
    assert missing.returncode != 0 and missing.stderr.strip().splitlines()[-1].startswith("error: no TAU dataset")
