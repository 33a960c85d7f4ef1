"""One upstream training step: train-mode forward, loss, gradients, BatchNorm statistics, AdamW.

Relative error of a tensor = max |ours - upstream| / max |upstream|. Gradients are compared on a float64
copy of the network: in float32 one ReLU input of the golden batch lies 3e-8 from zero (s3_b6), so
float32 rounding (oneDNN's or torch's) decides its side and moves the gradients below it by ~3 %.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from asc_tf.model import build_network, upstream_names
from asc_tf.model.layers import TorchBatchNorm
from asc_tf.torch_import import (_keras_to_torch, _layer_tensors, _torch_to_keras, load_upstream_weights,
                                 network_state_dict)
from asc_tf.training import TorchAdamW

TOL = 1e-4


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1))


def rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def upstream_keys(network: keras.Model) -> dict[int, tuple[str, str]]:
    """id(variable) -> (upstream name, layout kind)."""
    out = {}
    for layer_name, path in upstream_names(network).items():
        for suffix, kind, var in _layer_tensors(network.get_layer(layer_name)):
            out[id(var)] = (f"{path}.{suffix}", kind)
    return out


def train_forward(network: keras.Model, golden: dict, dtype: str) -> tuple[tf.Tensor, tf.Tensor, list]:
    x = nhwc(golden["mel_log"]).astype(dtype)
    with tf.GradientTape() as tape:
        logits = network(x, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(golden["labels"], logits, from_logits=True))
    return logits, loss, tape.gradient(loss, network.trainable_variables)


@pytest.fixture(scope="module")
def float32_step(golden):
    network = build_network()
    load_upstream_weights(network, golden)
    logits, loss, _ = train_forward(network, golden, "float32")
    return network, logits.numpy(), float(loss)


def test_float32_training_runs_the_fused_kernel(float32_step):
    """The golden float32 step below goes through FusedBatchNormV3 (so it checks the fused path against upstream)."""
    network, _, _ = float32_step
    bns = [layer for layer in network.layers if isinstance(layer, TorchBatchNorm)]
    assert bns and all(bn.fused for bn in bns)
    graph = tf.function(lambda x: network(x, training=True)).get_concrete_function(
        tf.TensorSpec([2, 256, 65, 1], tf.float32)).graph
    assert sum(op.type == "FusedBatchNormV3" for op in graph.get_operations()) == len(bns)


def test_loss_and_train_logits(float32_step, golden):
    _, logits, loss = float32_step
    assert abs(loss - float(golden["train_loss"])) < TOL
    assert np.abs(logits - golden["train_logits"]).max() < TOL


def test_batchnorm_running_statistics(float32_step, golden):
    network, _, _ = float32_step
    state = network_state_dict(network)
    keys = [k for k in state if "running" in k]
    assert len(keys) == 42
    worst = max((rel(state[k], golden[f"after_train_fwd.{k}"]), k) for k in keys)
    assert worst[0] < TOL, worst  # needs torch's unbiased variance in the running statistic


def test_every_gradient(golden):
    network = build_network(dtype="float64")
    load_upstream_weights(network, golden)
    _, loss, grads = train_forward(network, golden, "float64")
    assert abs(float(loss) - float(golden["train_loss"])) < TOL
    keys = upstream_keys(network)
    assert len(grads) == 63
    for var, grad in zip(network.trainable_variables, grads):
        name, kind = keys[id(var)]
        assert rel(_keras_to_torch(grad.numpy(), kind), golden[f"grad.{name}"]) < TOL, name


def test_adamw_step_from_upstream_gradients(golden):
    network = build_network()
    load_upstream_weights(network, golden)
    keys = upstream_keys(network)
    grads = []
    for var in network.trainable_variables:
        name, kind = keys[id(var)]
        grads.append(tf.constant(np.ascontiguousarray(_torch_to_keras(golden[f"grad.{name}"], kind))))
    TorchAdamW(learning_rate=0.005, weight_decay=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8).apply_gradients(
        zip(grads, network.trainable_variables))
    state = network_state_dict(network)
    for var in network.trainable_variables:
        name, _ = keys[id(var)]
        assert rel(state[name], golden[f"after_adamw_step.{name}"]) < TOL, name


def test_torch_adamw_formula_over_steps():
    """Three steps with decay against torch.optim.AdamW's update written out in numpy."""
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(50)
    grads = [rng.standard_normal(50) * 10.0 ** rng.uniform(-9, -1, 50) for _ in range(3)]
    var = keras.Variable(p0.copy(), dtype="float64")
    lr, wd = 2.0**-7, 0.125  # exact in float32 (Keras keeps the learning rate in a float32 variable)
    opt = TorchAdamW(learning_rate=lr, weight_decay=wd, epsilon=1e-8)
    p, m, v = p0.copy(), np.zeros(50), np.zeros(50)
    for t, g in enumerate(grads, start=1):
        opt.apply_gradients([(tf.constant(g), var)])
        p *= 1 - lr * wd
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p -= lr / (1 - 0.9**t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999**t) + 1e-8)
    np.testing.assert_allclose(var.numpy(), p, rtol=1e-12)
    # Keras's AdamW puts epsilon before the bias correction: visibly different for small gradients
    kvar = keras.Variable(p0.copy(), dtype="float64")
    keras_opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=wd, epsilon=1e-8)
    for g in grads:
        keras_opt.apply_gradients([(tf.constant(g), kvar)])
    assert np.abs(kvar.numpy() - p).max() > 1e-4


def batchnorm_step(fused: bool, x: np.ndarray, upstream_grad: np.ndarray) -> dict[str, np.ndarray]:
    """One training-mode call of a TorchBatchNorm (gamma, beta not 1 and 0) and its backward pass."""
    rng = np.random.default_rng(1)
    bn = TorchBatchNorm(momentum=0.9, epsilon=1e-5, fused=fused)
    bn.build(x.shape)
    bn.gamma.assign(rng.normal(1.0, 0.2, x.shape[-1]).astype(np.float32))
    bn.beta.assign(rng.normal(0.0, 0.2, x.shape[-1]).astype(np.float32))
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = bn(inputs, training=True)
        loss = tf.reduce_sum(outputs * upstream_grad)
    grads = tape.gradient(loss, [inputs, bn.gamma, bn.beta])
    return {"outputs": outputs.numpy(), "d_inputs": grads[0].numpy(), "d_gamma": grads[1].numpy(),
            "d_beta": grads[2].numpy(), "moving_mean": bn.moving_mean.numpy(),
            "moving_variance": bn.moving_variance.numpy(), "gamma": bn.gamma.numpy(), "beta": bn.beta.numpy()}


@pytest.fixture(scope="module")
def batchnorm_steps() -> tuple[dict, dict, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (8, 64, 17, 24)).astype(np.float32)  # a mean far from 0, as after a ReLU
    upstream_grad = rng.normal(size=x.shape).astype(np.float32)
    return batchnorm_step(True, x, upstream_grad), batchnorm_step(False, x, upstream_grad), x


# Both paths compute in float32 and differ only in the order of their sums over the n = 8 * 64 * 17 = 8,704 values
# of a channel: rounding errors of such sums stay near sqrt(n) * 2^-24 = 5.6e-6 relative; 2e-5 leaves room.
FUSED_TOL = 2e-5


def test_fused_batchnorm_step_equals_the_elementwise_one(batchnorm_steps):
    """Forward, gradients (input, gamma, beta) and moving statistics of one training step: fused == elementwise."""
    fused, elementwise, _ = batchnorm_steps
    for key in ("outputs", "d_inputs", "d_gamma", "d_beta", "moving_mean", "moving_variance"):
        assert rel(fused[key], elementwise[key]) < FUSED_TOL, key


def test_fused_batchnorm_has_torch_semantics(batchnorm_steps):
    """FusedBatchNormV3 normalises with the biased batch variance and returns the unbiased one (Bessel-corrected),
    which the moving variance takes: torch's BatchNorm2d pair (checked in float64 numpy)."""
    fused, _, x = batchnorm_steps
    values = x.astype(np.float64).reshape(-1, x.shape[-1])
    n = values.shape[0]
    mean, biased = values.mean(0), values.var(0)
    expected = (x - mean) / np.sqrt(biased + 1e-5) * fused["gamma"] + fused["beta"]
    assert rel(fused["outputs"], expected) < FUSED_TOL
    assert rel(fused["moving_mean"], 0.1 * mean) < FUSED_TOL
    assert rel(fused["moving_variance"], 0.9 + 0.1 * biased * n / (n - 1)) < FUSED_TOL
    assert rel(fused["moving_variance"], 0.9 + 0.1 * biased) > 1e-5  # the uncorrected one is visibly farther


def test_fused_batchnorm_falls_back_where_the_kernel_cannot_run():
    """float64 (the golden gradient test) and cross-replica statistics keep the elementwise ops."""
    bn = TorchBatchNorm(dtype="float64")
    graph = tf.function(lambda x: bn(x, training=True)).get_concrete_function(
        tf.TensorSpec([2, 4, 4, 3], tf.float64)).graph
    assert not any(op.type == "FusedBatchNormV3" for op in graph.get_operations())


def test_batchnorm_saved_before_the_fused_option_loads_fused():
    """A config written before `fused` existed (saved models and checkpoints of earlier runs) loads, fused."""
    config = TorchBatchNorm(momentum=0.9, epsilon=1e-5).get_config()
    assert config.pop("fused") is True
    assert TorchBatchNorm.from_config(config).fused
