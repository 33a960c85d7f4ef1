"""CP-Mobile network and the full model against upstream (golden weights and logits)."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

import asc_tf
from asc_tf import Config
from asc_tf.data import resample
from asc_tf.model import build_network, make_divisible
from asc_tf.model.cp_mobile import block_strides, stage_channels
from asc_tf.model.layers import StridedDepthwiseConv2D, TorchBatchNorm
from asc_tf.torch_import import load_upstream_weights


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1))


@pytest.fixture(scope="module")
def model(golden) -> keras.Model:
    """The default model with upstream's golden weights."""
    m = asc_tf.build_model()
    load_upstream_weights(m, golden)
    return m


def test_interface(model):
    assert model.input.shape == (None, 32000) and model.output.shape == (None, 10)
    assert isinstance(model.get_layer("frontend"), asc_tf.model.MelFrontend)
    network = model.get_layer("network")
    assert isinstance(network, keras.Model) and network.input.shape == (None, 256, 65, 1)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    assert trainable == 61148
    assert len([layer for layer in network.layers if isinstance(layer, TorchBatchNorm)]) == 21


def test_channel_arithmetic():
    assert make_divisible(57.6) == 56 and make_divisible(103.68) == 104 and make_divisible(67.2) == 64
    assert make_divisible(117.6) == 120 and make_divisible(3) == 8
    assert stage_channels(Config()) == [32, 56, 104]
    assert block_strides(Config()) == {2: (1, 1), 3: (1, 2), 4: (2, 1)}
    with pytest.raises(ValueError, match="block 9"):
        block_strides(Config(strides=(9, 1, 2)))


def test_layer_constants_and_initialisation():
    keras.utils.set_random_seed(0)
    network = build_network()
    bns = [layer for layer in network.layers if isinstance(layer, TorchBatchNorm)]
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)
    for bn in bns:
        np.testing.assert_array_equal(bn.gamma.numpy(), 1.0)
        np.testing.assert_array_equal(bn.beta.numpy(), 0.0)
        np.testing.assert_array_equal(bn.moving_variance.numpy(), 1.0)
    convs = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not c.use_bias and c.padding == "valid" for c in convs)
    proj = network.get_layer("s3_b6_proj_conv").kernel.numpy()  # 1x1, 120 -> 104: fan-out 104
    assert abs(proj.std() / math.sqrt(2 / 104) - 1) < 0.05
    assert np.abs(proj).max() > 2.5 * math.sqrt(2 / 104)  # plain normal, not truncated at 2 sigma
    dw = np.concatenate([layer.kernel.numpy().ravel() for layer in network.layers
                         if isinstance(layer, StridedDepthwiseConv2D) and layer.kernel.shape[2] == 120])
    assert abs(dw.std() / math.sqrt(2 / (120 * 9)) - 1) < 0.1  # depthwise fan-out C*9, not Keras's 9


def test_symmetric_padding_and_counting_average_pool():
    network = build_network()
    assert network.get_layer("in_c0_conv").output.shape == (None, 128, 33, 8)
    assert network.get_layer("s1_b3_shortcut_pool").output.shape == (None, 64, 9, 32)
    assert network.get_layer("s2_b4_dw_conv").strides == (2, 1)
    assert [n for n in ("s2_b4_add", "s3_b6_add") if any(layer.name == n for layer in network.layers)] == []
    # the average-pool shortcut divides by 9 also at the zero-padded border (count_include_pad=True)
    pad, pool = network.get_layer("s1_b3_shortcut_pad"), network.get_layer("s1_b3_shortcut_pool")
    ones = np.ones((1, 64, 17, 32), np.float32)
    out = pool(pad(ones)).numpy()
    assert np.isclose(out[0, 0, 0, 0], 4 / 9) and np.isclose(out[0, 5, 3, 0], 1.0)


def test_logits_match_upstream(model, golden):
    logits = model.get_layer("network")(nhwc(golden["mel_log"]), training=False).numpy()
    assert np.abs(logits - golden["logits_eval"]).max() < 1e-4


def test_float16_argmax_matches_upstream(golden):
    network = build_network(dtype="float16")
    load_upstream_weights(network, golden)
    logits = network(nhwc(golden["mel_log"]).astype(np.float16), training=False).numpy()
    assert logits.dtype == np.float16
    np.testing.assert_array_equal(logits.argmax(1), golden["logits_eval_fp16"].argmax(1))
    assert np.abs(logits.astype(np.float32) - golden["logits_eval_fp16"].astype(np.float32)).max() < 1e-2


def test_end_to_end_from_44k(model, golden):
    waveform = resample(golden["waveform_44k"][:, 0], 44100, 32000)
    logits = model(waveform, training=False).numpy()
    assert np.abs(logits - golden["logits_eval"]).max() < 2e-3


def test_augmentations_only_in_training(model, golden):
    wave = golden["resampled_32k"][:, 0]
    keras.utils.set_random_seed(4)
    np.testing.assert_array_equal(model(wave).numpy(), model(wave, training=False).numpy())
    # train mode: batch statistics plus masking; masking alone shows on the front end
    fe = model.get_layer("frontend")
    assert not np.array_equal(fe(wave, training=True).numpy(), fe(wave).numpy())


def test_save_load_round_trip(model, golden, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    wave = golden["resampled_32k"][:, 0]
    np.testing.assert_array_equal(loaded(wave, training=False).numpy(), model(wave, training=False).numpy())
    assert loaded.get_layer("frontend").get_config() == model.get_layer("frontend").get_config()


def test_larger_variant_builds():
    config = Config(base_channels=48, channels_multiplier=2.0, expansion_rate=3.0, n_blocks=(2, 2, 2),
                    strides=(2, 1, 2, 4, 2, 1))
    model = asc_tf.build_model(config)
    assert model(np.zeros((2, 32000), np.float32)).shape == (2, 10)
    assert stage_channels(config) == [48, 96, 192]


def test_compiled_model_reloads_in_a_fresh_process(tmp_path):
    """`asc_tf.load_model` alone finds every custom object the project saves (layers, optimizer, schedule)."""
    import subprocess
    import sys

    from asc_tf.training import TorchAdamW, WarmupCosine

    model = asc_tf.build_model()
    model.compile(optimizer=TorchAdamW(WarmupCosine(0.005, 2000, 81900), weight_decay=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = tmp_path / "compiled.keras"
    model.save(path)
    wave = np.random.default_rng(0).standard_normal((2, 32000)).astype(np.float32)
    np.save(tmp_path / "expected.npy", model(wave, training=False).numpy())
    np.save(tmp_path / "wave.npy", wave)
    code = (
        "import sys, numpy as np, asc_tf\n"
        f"m = asc_tf.load_model({str(path)!r}, compile=True)\n"
        f"d = {str(tmp_path)!r}\n"
        "out = m(np.load(d + '/wave.npy'), training=False).numpy()\n"
        "assert np.array_equal(out, np.load(d + '/expected.npy'))\n"
        "assert type(m.optimizer).__name__ == 'TorchAdamW'\n"
        "assert type(m.optimizer._learning_rate).__name__ == 'WarmupCosine'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
