"""MelFrontend against upstream's torchaudio front end (golden tensors)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from asc_tf import Config
from asc_tf.model.frontend import LOG_OFFSET, MelFrontend, mask_along_axis, mel_filterbank, periodic_hann


def nhwc(x: np.ndarray) -> np.ndarray:
    """torch [B, C, F, T] -> Keras [B, F, T, C]."""
    return np.transpose(x, (0, 2, 3, 1))


@pytest.fixture(scope="module")
def frontend() -> MelFrontend:
    return MelFrontend.from_config_object(Config(), name="frontend")


def test_filterbank_and_window_equal_torchaudio(golden):
    assert np.abs(mel_filterbank(32000, 4096, 256, 0, None) - golden["mel.1.mel_scale.fb"]).max() < 5e-5
    assert np.abs(periodic_hann(3072) - golden["mel.1.spectrogram.window"]).max() < 1e-6


def test_log_mel_matches_upstream(frontend, golden):
    out = frontend(golden["resampled_32k"][:, 0], training=False).numpy()
    assert out.shape == (4, 256, 65, 1)
    assert np.abs(out - nhwc(golden["mel_log"])).max() < 1e-3


def test_mel_power_relative_error(frontend, golden):
    power = frontend.mel_power(golden["resampled_32k"][:, 0]).numpy()
    ref = nhwc(golden["mel_power"])
    assert np.max(np.abs(power - ref) / (ref + LOG_OFFSET)) < 1e-3


def test_frequency_masking_with_recorded_draws(golden, golden_meta):
    power = nhwc(golden["mel_power"])
    masked = mask_along_axis(power, golden["freqm_value"][:, 0], golden["freqm_min_value"][:, 0], axis=1)
    out = np.log(masked.numpy() + LOG_OFFSET)
    assert np.abs(out - nhwc(golden["freqm_mel_log_train"])).max() < 1e-5
    for clip, (start, end) in enumerate(golden_meta["freqm_masked_bins"]):
        zero_rows = np.flatnonzero((masked.numpy()[clip, :, :, 0] == 0).all(axis=1))
        assert list(zero_rows) == list(range(start, end))


def test_masking_only_in_training(frontend, golden):
    wave = golden["resampled_32k"][:, 0]
    eval_a = frontend(wave, training=False).numpy()
    np.testing.assert_array_equal(eval_a, frontend(wave).numpy())
    frontend.seed_generator.state.assign(np.array([3, 0], dtype=frontend.seed_generator.state.dtype))
    widths = []
    for _ in range(5):
        train = frontend(wave, training=True).numpy()
        changed = (train != eval_a).any(axis=(2, 3))  # [B, F]: mel rows touched
        for clip in range(4):
            rows = np.flatnonzero(changed[clip])
            assert np.allclose(train[clip, rows], np.log(LOG_OFFSET), atol=1e-5)  # zero power -> log(1e-5)
            if rows.size:
                assert rows.max() - rows.min() + 1 == rows.size  # one contiguous band
            widths.append(rows.size)
    assert max(widths) < 48 and max(widths) > 0


def test_time_masking_when_enabled(golden):
    layer = MelFrontend.from_config_object(Config(freqm=0, timem=20))
    wave = golden["resampled_32k"][:, 0]
    layer.seed_generator.state.assign(np.array([5, 0], dtype=layer.seed_generator.state.dtype))
    ref = layer(wave).numpy()
    widths = []
    for _ in range(4):
        train = layer(wave, training=True).numpy()
        for clip in range(4):
            cols = np.flatnonzero((train[clip] != ref[clip]).any(axis=(0, 2)))
            assert np.allclose(train[clip][:, cols], np.log(LOG_OFFSET), atol=1e-5)  # whole frames masked
            if cols.size:
                assert cols.max() - cols.min() + 1 == cols.size
            widths.append(cols.size)
    assert 0 < max(widths) < 20


def test_config_round_trip_and_shapes():
    layer = MelFrontend.from_config_object(Config(n_mels=128, hop_length=320, freqm=0), name="fe")
    clone = MelFrontend.from_config(json.loads(json.dumps(layer.get_config())))
    assert clone.get_config() == layer.get_config()
    out = clone(np.zeros((2, 32000), np.float32))
    assert out.shape == (2, 128, 101, 1)
    assert layer.compute_output_shape((None, 32000)) == (None, 128, 101, 1)
    with pytest.raises(ValueError):
        MelFrontend(n_fft=1024, window_length=2048)
    assert isinstance(keras.saving.get_registered_object("asc_tf>MelFrontend"), type)
