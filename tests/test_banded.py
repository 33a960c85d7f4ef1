"""The banded mel product: equal to the dense one, in Keras, in numpy, in the exported front end and the firmware."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from asc_tf import Config
from asc_tf.edge.frontend import LogMel
from asc_tf.edge.mel import MelBands, mel_filterbank
from asc_tf.export import firmware
from asc_tf.export.audit import audit_file
from asc_tf.export.runtime import TFLiteModel
from asc_tf.model.frontend import MelFrontend, frame_signal


def _clips() -> np.ndarray:
    """Loud to near-silent noise, silence and a half-silent clip: the log-mel's whole range."""
    rng = np.random.default_rng(0)
    clips = (rng.normal(size=(6, 32000)) * np.geomspace(1e-5, 0.5, 6)[:, None]).astype(np.float32)
    clips[0] = 0.0
    clips[1, :16000] = 0.0
    return clips


@pytest.fixture(scope="module")
def inputs(golden) -> np.ndarray:
    return np.concatenate([golden["resampled_32k"][:, 0], _clips()])


def test_bands_are_runs_and_blocks_cover_them():
    fb = mel_filterbank(32000, 4096, 256, 0, None)
    bands = MelBands.from_dense(fb)
    assert len(bands.weights) == 4067 and np.array_equal(bands.dense(), fb)
    for overhead in (0, 3000, 10**9):
        blocks = bands.blocks(overhead)
        assert [b.band_lo for b in blocks][0] == 0 and blocks[-1].band_hi == 256
        rebuilt = np.zeros_like(fb)
        for b in blocks:
            rebuilt[b.bin_lo:b.bin_hi, b.band_lo:b.band_hi] = b.weights
        assert np.array_equal(rebuilt, fb)
    assert sum(b.macs for b in bands.blocks(0)) == 4067 and len(bands.blocks(10**9)) == 1


def test_framing_equals_tf_signal_frame():
    import tensorflow as tf

    x = np.random.default_rng(1).normal(size=(2, 5000)).astype(np.float32)
    for length, hop, frames in ((3072, 500, 4), (300, 500, 9), (1000, 250, 17), (512, 128, 20)):
        ours = frame_signal(tf.constant(x), 7, length, hop, frames).numpy()
        theirs = tf.signal.frame(x[:, 7:], length, hop, pad_end=True)[:, :frames].numpy()
        np.testing.assert_array_equal(ours, theirs)


def test_banded_equals_dense_log_mel(inputs):
    banded = MelFrontend.from_config_object(Config())(inputs, training=False).numpy()
    dense = MelFrontend.from_config_object(Config(), mel_product="dense")(inputs, training=False).numpy()
    assert np.max(np.abs(banded - dense)) < 1e-5


def test_numpy_front_end_equals_keras(inputs):
    keras_mel = MelFrontend.from_config_object(Config())(inputs, training=False).numpy()[..., 0]
    numpy_mel = np.stack([LogMel()(x) for x in inputs])
    assert numpy_mel.dtype == np.float32 and numpy_mel.shape == keras_mel.shape
    assert np.max(np.abs(numpy_mel - keras_mel)) < 1e-4


def test_numpy_front_end_is_the_plain_expression(inputs):
    """Windowing into the per-thread buffer and the in-place power, mel and log change no bit of the result."""
    frontend = LogMel()
    for x in inputs:
        padded = np.pad(x, 2048, mode="reflect")[frontend.offset:]
        frames = np.lib.stride_tricks.sliding_window_view(padded, 3072)[::500][:65]
        spectrum = scipy.fft.rfft(frames * frontend.window, n=4096, axis=-1)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        mel = np.concatenate([power[:, b.bin_lo:b.bin_hi] @ b.weights for b in frontend.blocks], axis=1)
        np.testing.assert_array_equal(frontend(x), np.log(mel + np.float32(1e-5)).T)
        np.testing.assert_array_equal(frontend.power(x), power)


def test_numpy_front_end_buffers_are_never_returned(inputs):
    """Results survive later calls (other clips, other lengths, other threads): the buffers stay inside."""
    from concurrent.futures import ThreadPoolExecutor

    frontend = LogMel()
    first, power = frontend(inputs[0]), frontend.power(inputs[1])
    kept_first, kept_power = first.copy(), power.copy()
    frontend(inputs[3]), frontend.power(inputs[4])
    np.testing.assert_array_equal(first, kept_first)
    np.testing.assert_array_equal(power, kept_power)
    short = frontend(inputs[2][:20000])
    assert short.shape == (256, 41)
    np.testing.assert_array_equal(short, LogMel()(inputs[2][:20000]))
    sequential = [LogMel()(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(frontend, list(inputs) * 8))
    for i, out in enumerate(threaded):
        np.testing.assert_array_equal(out, sequential[i % len(inputs)])


def test_exported_front_end_is_banded_and_equals_numpy(int8_export, inputs):
    path = int8_export.path / "frontend_float32.tflite"
    audit = audit_file(path)
    assert audit.macs < 2_000_000 and audit.parameter_bytes < 128_000 and "BATCH_MATMUL" not in audit.op_counts  # dense: 34.1 M MACs
    assert not any(op.startswith(("CUSTOM", "FLEX")) for op in audit.op_counts)  # builtin ops only
    model = TFLiteModel(path, num_threads=1)
    exported = np.stack([model(x[None])[0, ..., 0] for x in inputs])
    assert np.max(np.abs(np.stack([LogMel()(x) for x in inputs]) - exported)) < 1e-4


def test_firmware_mel_arrays_under_32_kB(int8_export):
    _, bands = firmware.frontend_arrays(Config())
    assert bands.nbytes() < 32_000
    source = (int8_export.path / "firmware" / "asc_frontend.c").read_text()
    assert source.count("f,") + source.count("f\n") >= len(bands.weights)
    readme = (int8_export.path / "firmware" / "README.md").read_text()
    assert f"{bands.nbytes():,} bytes" in readme


def test_complexity_reports_the_front_end_apart(capsys):
    from asc_tf.complexity import main as complexity_main

    assert complexity_main(["--json"]) == 0
    figures = __import__("json").loads(capsys.readouterr().out)
    assert figures["macs"] == 29_419_156  # the network alone, as the challenge counts
    assert figures["frontend"]["mel_macs"] == 65 * 4067 and figures["frontend"]["mel_macs_dense"] == 34_095_360
    assert figures["frontend"]["mel_array_bytes"] < 32_000
    assert complexity_main([]) == 0
    assert "Front end per clip (not counted by the challenge" in capsys.readouterr().out
