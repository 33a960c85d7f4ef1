"""meta.csv, the official splits, and upstream's resampler."""

from __future__ import annotations

import math

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asc_tf.data import meta as meta_mod
from asc_tf.data import resample
from asc_tf.data.meta import CLASSES, DEVICE_GROUPS, DEVICES, MetadataError, device_from_filename, read_meta
from asc_tf.data.resample import banded_kernel, sinc_kernel
from asc_tf.data.splits import (SplitFilesMissing, ensure_split_files, load_splits, resolve_split_dir,
                                tier_files, tiers_of)

HEADER = "filename\tscene_label\tidentifier\tsource_label\n"
ROW_A = "audio/airport-lisbon-1000-40000-0-a.wav\tairport\tlisbon-1000\ta\n"
ROW_B = "audio/tram-vienna-1001-40001-3-s4.wav\ttram\tvienna-1001\ts4\n"


def write(tmp_path: Path, text: str, name: str = "meta.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_classes_devices_and_groups_are_upstreams():
    assert CLASSES == ("airport", "bus", "metro", "metro_station", "park", "public_square", "shopping_mall",
                       "street_pedestrian", "street_traffic", "tram")
    assert list(CLASSES) == sorted(CLASSES)  # LabelEncoder order
    assert DEVICES == ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
    assert [DEVICE_GROUPS[d] for d in DEVICES] == ["real"] * 3 + ["seen"] * 3 + ["unseen"] * 3
    assert device_from_filename("audio/airport-lisbon-1000-40000-0-s4.wav") == "s4"


def test_read_meta_derives_label_device_and_city(tmp_path):
    frame = read_meta(write(tmp_path, HEADER + ROW_A + ROW_B))
    assert list(frame["label"]) == [0, 9]
    assert list(frame["device"]) == ["a", "s4"]
    assert list(frame["device_group"]) == ["real", "unseen"]
    assert list(frame["city"]) == ["lisbon", "vienna"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (HEADER.replace("\tidentifier", "") + "audio/a-b-1-2-0-a.wav\tairport\ta\n", r"line 1: missing column\(s\) \['identifier'\]"),
        (HEADER.replace("\t", ",") + ROW_A.replace("\t", ","), "line 1: columns are separated by commas"),
        (HEADER + ROW_A + ROW_B.replace("\ttram\t", "\tbeach\t"), "line 3: unknown scene 'beach'"),
        (HEADER + ROW_A + ROW_B + ROW_A, r"line 4: audio/airport-lisbon-1000-40000-0-a.wav is listed twice \(first on line 2\)"),
        (HEADER + ROW_A + "audio/x-y-1-2-0-a.wav\tbus\n", "line 3: 2 tab-separated fields, the header has 4"),
        (HEADER + ROW_A.replace("-a.wav", "-zz.wav"), "line 2: unknown device 'zz'"),
        ("", "line 1: empty file"),
    ],
    ids=["missing-column", "commas", "unknown-scene", "duplicate", "short-row", "unknown-device", "empty"],
)
def test_malformed_meta_gives_one_clear_error_naming_file_and_line(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(MetadataError, match=expected) as error:
        read_meta(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_meta_names_the_file(tmp_path):
    with pytest.raises(MetadataError, match="meta.csv: file not found"):
        read_meta(tmp_path / "meta.csv")


# --- splits -----------------------------------------------------------------------------------


@pytest.fixture()
def split_copy(dataset_dir, tmp_path) -> Path:
    target = tmp_path / "split_setup"
    shutil.copytree(dataset_dir / "split_setup", target)
    return target


def test_synthetic_splits_load_nested_in_meta_order(dataset_dir):
    meta = read_meta(dataset_dir / "meta.csv")
    splits = load_splits(meta, dataset_dir / "split_setup")
    order = {f: i for i, f in enumerate(meta["filename"])}
    sizes = [len(splits[f"split{n}"]) for n in (5, 10, 25, 50, 100)]
    assert sizes == sorted(sizes) and sizes[0] > 0 and len(set(sizes)) == 5
    for files in splits.values():
        assert [order[f] for f in files] == sorted(order[f] for f in files)
    tiers = tier_files(splits)
    assert sum(len(tiers[t]) for t in tiers_of("split25")) == len(splits["split25"])
    stored = [f for files in tiers.values() for f in files]
    assert len(stored) == len(set(stored)) == len(splits["split100"]) + len(splits["test"])


def _rewrite(path: Path, frame: pd.DataFrame) -> None:
    path.write_text(frame.to_csv(sep="\t", index=False))


def test_split_with_unknown_file_is_rejected(dataset_dir, split_copy):
    frame = pd.read_csv(split_copy / "split25.csv", sep="\t")
    frame.loc[len(frame)] = ["audio/park-paris-9-9-0-a.wav", "park"]
    _rewrite(split_copy / "split25.csv", frame)
    with pytest.raises(MetadataError, match=rf"split25.csv line {len(frame) + 1}: audio/park-paris-9-9-0-a.wav is not in meta.csv"):
        load_splits(read_meta(dataset_dir / "meta.csv"), split_copy)


def test_splits_that_are_not_nested_are_rejected(dataset_dir, split_copy):
    frame = pd.read_csv(split_copy / "split10.csv", sep="\t")
    small = set(pd.read_csv(split_copy / "split5.csv", sep="\t")["filename"])
    _rewrite(split_copy / "split10.csv", frame[~frame["filename"].isin(list(small)[:1])])
    with pytest.raises(MetadataError, match=r"split10.csv: lacks 1 clip\(s\) of split5.csv"):
        load_splits(read_meta(dataset_dir / "meta.csv"), split_copy)


def test_train_and_test_overlap_is_rejected(dataset_dir, split_copy):
    test = pd.read_csv(split_copy / "test.csv", sep="\t")
    train = pd.read_csv(split_copy / "split100.csv", sep="\t")
    test.loc[len(test)] = [train["filename"].iloc[0]]
    _rewrite(split_copy / "test.csv", test)
    with pytest.raises(MetadataError, match=r"test.csv: 1 clip\(s\) are also in split100.csv"):
        load_splits(read_meta(dataset_dir / "meta.csv"), split_copy)


def test_missing_split_without_network_says_where_to_put_it(tmp_path):
    with pytest.raises(SplitFilesMissing) as error:
        ensure_split_files(tmp_path / "split_setup", "http://127.0.0.1:9/files/")
    message = str(error.value)
    assert "split5.csv is missing" in message and str(tmp_path / "split_setup") in message
    assert "http://127.0.0.1:9/files/split5.csv" in message and "\n" not in message


def test_missing_splits_are_fetched_from_the_release_location(dataset_dir, tmp_path):
    target = tmp_path / "fetched"
    ensure_split_files(target, (dataset_dir / "split_setup").as_uri() + "/")
    for name in ("split5", "split10", "split25", "split50", "split100", "test"):
        assert (target / f"{name}.csv").read_bytes() == (dataset_dir / "split_setup" / f"{name}.csv").read_bytes()


def test_split_dir_resolution(dataset_dir, tmp_path):
    assert resolve_split_dir(dataset_dir, None) == dataset_dir / "split_setup"
    assert resolve_split_dir(tmp_path, None) == Path("split_setup")  # upstream's default, relative to CWD
    assert resolve_split_dir(dataset_dir, tmp_path) == tmp_path


# --- resampler ----------------------------------------------------------------------------------


def test_resampler_kernel_and_output_match_upstream(golden):
    kernel, width = sinc_kernel(441, 320)
    assert width == 9 and kernel.shape == (320, 459)
    assert np.abs(kernel - golden["mel.0.kernel"][:, 0, :]).max() < 1e-5
    out = resample(golden["waveform_44k"], 44100, 32000)
    assert out.shape == golden["resampled_32k"].shape and out.dtype == np.float32
    assert np.abs(out - golden["resampled_32k"]).max() <= 1e-4


@pytest.mark.parametrize("orig, new, length", [(48000, 32000, 48000), (16000, 32000, 1000), (44100, 32000, 44099)])
def test_resampler_handles_any_integer_rates(orig, new, length):
    t = np.arange(length) / orig
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(tone, orig, new)
    assert out.shape == (int(np.ceil(length * new / orig)),)
    expected = np.sin(2 * np.pi * 1000 * np.arange(out.size) / new)
    middle = slice(out.size // 4, 3 * out.size // 4)  # away from the zero-padded edges
    assert np.abs(out[middle] - expected[middle]).max() < 2e-3


def _dense_resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """The dense polyphase product (upstream's conv1d over the whole kernel), the banded one's reference."""
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    kernel, width = sinc_kernel(orig, new)
    flat = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    padded = np.pad(flat, ((0, 0), (width, width + orig)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1], axis=-1)[:, ::orig]
    out = (frames.astype(np.float64) @ kernel.T.astype(np.float64)).reshape(flat.shape[0], -1)
    target = math.ceil(new * x.shape[-1] / orig)
    return out[:, :target].reshape(*x.shape[:-1], target)


def test_banded_kernel_keeps_every_nonzero_tap():
    kernel, _ = sinc_kernel(441, 320)
    blocks, _, _ = banded_kernel(441, 320)
    rebuilt = np.zeros_like(kernel)
    for b in blocks:
        rebuilt[b.first:b.stop, b.lo:b.hi] = b.weights.T
    assert np.array_equal(rebuilt, kernel)
    assert 16 <= (kernel != 0).sum(axis=1).max() <= 17  # the band the dense product multiplied in full
    assert sum(b.weights.size for b in blocks) < kernel.size / 7


@pytest.mark.parametrize("orig, new, length", [(44100, 32000, 44100), (48000, 32000, 48000), (16000, 32000, 1000),
                                               (44100, 32000, 441001), (22050, 32000, 7), (8000, 44100, 3)])
def test_banded_resampler_equals_dense_product(golden, orig, new, length):
    rng = np.random.default_rng(length)
    inputs = [rng.uniform(-1, 1, (2, 3, length)).astype(np.float32)]
    if (orig, new, length) == (44100, 32000, 44100):
        inputs.append(golden["waveform_44k"])
    for x in inputs:
        out = resample(x, orig, new)
        assert out.dtype == np.float32
        assert np.abs(out - _dense_resample(x, orig, new)).max() <= 1e-6


def test_resampler_rejects_bad_rates():
    with pytest.raises(ValueError, match="positive integers"):
        resample(np.zeros(10), 44100.5, 32000)


def test_meta_module_writes_tsv_atomically(tmp_path):
    frame = pd.DataFrame({"filename": ["audio/a.wav"], "x": [1]})
    meta_mod.write_tsv(frame, tmp_path / "out.csv", ["filename"])
    assert (tmp_path / "out.csv").read_text() == "filename\naudio/a.wav\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "out.csv"]
