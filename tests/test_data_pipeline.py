"""The tf.data pipeline: batches, split contents, order, reproducibility, roll, corrupt shards."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from asc_tf.data.convert import MANIFEST
from asc_tf.data.meta import read_meta
from asc_tf.data.pipeline import ShardError, make_dataset, roll_batch, steps_per_epoch
from asc_tf.data.splits import load_splits


@pytest.fixture(scope="module")
def splits(dataset_dir):
    """The split file lists (reference for what the pipeline must read)."""
    return load_splits(read_meta(dataset_dir / "meta.csv"), dataset_dir / "split_setup")


@pytest.fixture(params=["yes", "no"], ids=["in-memory", "streamed"])
def config(request, data_config):
    """Both pipeline paths: a split held in memory, and a split streamed from the shards."""
    return data_config.replace(cache=request.param)


def collect(ds):
    waves, labels, names = [], [], []
    for waveform, label, meta in ds:
        waves.append(waveform.numpy())
        labels.append(label.numpy())
        names += [n.decode() for n in meta["filename"].numpy()]
    return np.concatenate(waves), np.concatenate(labels), names


def test_batches_shapes_and_types(shards_dir, config):
    ds = make_dataset(shards_dir, "split100", config, training=True)
    assert ds.element_spec[0].shape.as_list() == [None, 32000] and ds.element_spec[0].dtype == tf.float32
    assert ds.element_spec[1].dtype == tf.int32
    sizes = [int(label.shape[0]) for _, label in ds]
    assert sizes[:-1] == [16] * (len(sizes) - 1) and 0 < sizes[-1] <= 16  # last partial batch kept
    assert len(sizes) == steps_per_epoch(shards_dir, "split100", 16)


@pytest.mark.parametrize("cache", ["yes", "no"])
def test_autotuning_is_off_in_every_dataset(shards_dir, config, cache):
    # TF 2.21: with autotuning on, deleting an iterator waits for the autotune thread's next wake-up (up to ~7 s
    # per demo epoch, measured with gdb in RootDataset::Iterator's destructor); bench/demo.py times the effect.
    for training in (True, False):
        ds = make_dataset(shards_dir, "split25", config.replace(cache=cache), training=training)
        assert ds.options().autotune.enabled is False


@pytest.mark.parametrize("split", ["split5", "split25", "split100", "test"])
def test_each_split_reads_exactly_its_clips(shards_dir, config, splits, dataset_dir, split):
    _, labels, names = collect(make_dataset(shards_dir, split, config, training=True, with_metadata=True))
    assert sorted(names) == sorted(splits[split])
    meta = read_meta(dataset_dir / "meta.csv").set_index("filename")
    assert list(labels) == list(meta.loc[names, "label"])


def test_evaluation_is_in_test_csv_order_without_roll(shards_dir, config, splits):
    first = collect(make_dataset(shards_dir, "test", config, training=False, with_metadata=True))
    second = collect(make_dataset(shards_dir, "test", config.replace(seed=5), training=False, with_metadata=True))
    assert first[2] == splits["test"]  # upstream's (meta.csv) order
    np.testing.assert_array_equal(first[0], second[0])


def test_epoch_order_and_rolls_reproducible_for_a_seed(shards_dir, config):
    def run(config, epoch):
        return collect(make_dataset(shards_dir, "split100", config, training=True, epoch=epoch, with_metadata=True))

    a, again, other_epoch = run(config, 3), run(config, 3), run(config, 4)
    other_seed = run(config.replace(seed=1), 3)
    np.testing.assert_array_equal(a[0], again[0])
    assert a[2] == again[2]
    assert a[2] != other_epoch[2] and a[2] != other_seed[2]
    dataset = make_dataset(shards_dir, "split100", config, training=True, epoch=None)
    orders = [np.concatenate([label.numpy() for _, label in dataset]) for _ in range(2)]
    assert not np.array_equal(*orders)  # epoch=None reshuffles on every iteration


def test_roll_is_circular_uniform_within_range(shards_dir, config):
    """Training clips equal their stored clip rolled by a shift within +-roll_sec * 32000 samples."""
    reference = {}
    for waveform, _, meta in make_dataset(shards_dir, "split25", config, training=False, with_metadata=True):
        reference.update(zip([n.decode() for n in meta["filename"].numpy()], waveform.numpy()))
    max_shift = config.roll_samples
    assert max_shift == 3200
    shifts = []
    rolled = collect(make_dataset(shards_dir, "split25", config, training=True, with_metadata=True))
    for waveform, name in zip(rolled[0], rolled[2]):
        original = reference[name]
        # the shift is where the circular cross-correlation peaks; check the clip is exactly that roll
        corr = np.fft.irfft(np.fft.rfft(waveform) * np.conj(np.fft.rfft(original)), n=original.size)
        shift = int(np.argmax(corr))
        shift = shift - original.size if shift > original.size // 2 else shift
        np.testing.assert_array_equal(waveform, np.roll(original, shift))
        shifts.append(shift)
    shifts = np.array(shifts)
    assert np.abs(shifts).max() <= max_shift and len(set(shifts)) > len(shifts) // 2
    assert (shifts < 0).any() and (shifts > 0).any()


def test_roll_batch_matches_torch_roll_convention():
    x = tf.constant(np.arange(20, dtype=np.float32).reshape(2, 10))
    out = roll_batch(x, 3, tf.constant([7, 9], tf.int64)).numpy()
    for row, original in zip(out, x.numpy()):
        # out[t] = x[(t - shift) mod N] (torch.roll / np.roll) for exactly one shift in [-3, 3]
        assert len([s for s in range(-3, 4) if np.array_equal(row, np.roll(original, s))]) == 1


def test_shuffle_mixes_classes_within_a_batch(shards_dir, config):
    _, labels, _ = collect(make_dataset(shards_dir, "split100", config, training=True, with_metadata=True))
    first_batch = labels[:16]
    assert len(set(first_batch.tolist())) >= 4


@pytest.fixture()
def shards_copy(shards_dir, tmp_path):
    target = tmp_path / shards_dir.name
    shutil.copytree(shards_dir, target)
    return target


def test_truncated_shard_gives_a_clear_error(shards_copy, data_config):
    shard = json.loads((shards_copy / MANIFEST).read_text())["tiers"]["test"]["shards"][1]["file"]
    data = (shards_copy / shard).read_bytes()
    (shards_copy / shard).write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=rf"{shard}: \d+ bytes, the manifest says \d+ \(truncated or corrupt\): reconvert with python -m asc_tf.data.convert .*--verify"):
        make_dataset(shards_copy, "test", data_config, training=False)
    make_dataset(shards_copy, "split5", data_config, training=False)  # other splits stay readable


def test_corrupt_shard_contents_detected(shards_copy, data_config):
    shard = json.loads((shards_copy / MANIFEST).read_text())["tiers"]["test"]["shards"][0]["file"]
    data = bytearray((shards_copy / shard).read_bytes())
    data[5000] ^= 0xFF
    (shards_copy / shard).write_bytes(bytes(data))
    with pytest.raises(ShardError, match=rf"{shard}: contents differ from the manifest's sha256"):
        make_dataset(shards_copy, "test", data_config, training=False, verify="hash")
    # without the hash check, TFRecord's CRC still refuses it, and the failing record is traced to its shard
    with pytest.raises(ShardError, match=rf"{shard}: contents differ .*corrupted record at \d+: reconvert with"):
        for _ in make_dataset(shards_copy, "test", data_config, training=False):
            pass
    with pytest.raises(tf.errors.DataLossError):  # streamed: raised while iterating (train() names the shard)
        for _ in make_dataset(shards_copy, "test", data_config.replace(cache="no"), training=False):
            pass


def test_missing_conversion_and_unknown_split(tmp_path, shards_dir, data_config):
    with pytest.raises(ShardError, match="manifest.json missing.*python -m asc_tf.data.convert"):
        make_dataset(tmp_path, "test", data_config, training=False)
    with pytest.raises(ValueError, match="unknown split 'split7'"):
        make_dataset(shards_dir, "split7", data_config, training=False)
