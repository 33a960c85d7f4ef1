"""FreqMixStyle against upstream's mixstyle (golden draws), and its training-only randomness."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from asc_tf.model.mixstyle import FreqMixStyle, freq_mixstyle


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1))


def test_core_reproduces_upstream(golden):
    out = freq_mixstyle(nhwc(golden["mixstyle_in"]), golden["mixstyle_lmda"].reshape(-1), golden["mixstyle_perm"])
    assert np.abs(out.numpy() - nhwc(golden["mixstyle_out"])).max() < 1e-5


def test_statistics_carry_no_gradient(golden):
    x = tf.constant(nhwc(golden["mixstyle_in"]))
    lmda, perm = golden["mixstyle_lmda"].reshape(-1), golden["mixstyle_perm"]
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(freq_mixstyle(x, lmda, perm))
    grad = tape.gradient(out, x).numpy()
    # with detached statistics d out / d x = sig_mix / f_sig, constant over time and channel
    xs = x.numpy()
    f_sig = np.sqrt(xs.var(axis=(2, 3), ddof=1, keepdims=True) + 1e-6)
    lm = lmda.reshape(-1, 1, 1, 1)
    expected = (f_sig * lm + f_sig[perm] * (1 - lm)) / f_sig
    assert np.abs(grad - expected).max() < 1e-4 * np.abs(expected).max()


def test_identity_outside_training_and_when_p_is_zero(golden):
    x = nhwc(golden["mixstyle_in"])
    np.testing.assert_array_equal(FreqMixStyle()(x).numpy(), x)
    np.testing.assert_array_equal(FreqMixStyle(p=0.0)(x, training=True).numpy(), x)


def test_one_coin_per_batch_with_probability_p(golden):
    x = nhwc(golden["mixstyle_in"])
    layer = FreqMixStyle(p=0.4, alpha=0.3)
    layer.seed_generator.state.assign(np.array([11, 0], dtype=layer.seed_generator.state.dtype))
    applied = [not np.array_equal(layer(x, training=True).numpy(), x) for _ in range(300)]
    assert 0.3 < np.mean(applied) < 0.5  # binomial(300, 0.4): sd 0.028


def test_beta_draws_as_the_layer_takes_them():
    draws = keras.random.beta([40000], 0.3, 0.3, seed=2).numpy()
    assert draws.min() >= 0 and draws.max() <= 1
    assert abs(draws.mean() - 0.5) < 0.01
    assert abs(draws.var() - 1 / (4 * (2 * 0.3 + 1))) < 0.01  # Beta(a, a) variance


def test_draws_repeat_after_reseeding(golden):
    """The trainer resets the seed generator per epoch: the same state gives the same coin, lambda, perm."""
    x = nhwc(golden["mixstyle_in"])
    layer = FreqMixStyle(p=0.5)
    outputs = []
    for _ in range(2):
        layer.seed_generator.state.assign(np.array([5, 0], dtype=layer.seed_generator.state.dtype))
        outputs.append(np.stack([layer(x, training=True).numpy() for _ in range(6)]))
    np.testing.assert_array_equal(*outputs)
    assert len({float(o.sum()) for o in outputs[0]}) > 1  # the draws still vary from call to call


def test_get_config_round_trip():
    layer = FreqMixStyle(p=0.7, alpha=0.2, name="m")
    assert FreqMixStyle.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize("p", [1.0])
def test_mixing_keeps_shape_and_changes_statistics(golden, p):
    x = nhwc(golden["mixstyle_in"])
    out = FreqMixStyle(p=p)(x, training=True).numpy()
    assert out.shape == x.shape and not np.allclose(out, x)
