"""The warm-up + cosine schedule against upstream's (transformers) values at every step."""

from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf

from asc_tf.training import TorchAdamW, WarmupCosine, total_steps


def test_every_step_equals_upstream(golden, golden_meta):
    meta = golden_meta["lr_schedule"]
    steps = total_steps(meta["epochs"], meta["assumed_train_clips"], meta["batch_size"])
    assert steps == meta["total_steps"] == 81900
    schedule = WarmupCosine(meta["peak_lr"], meta["warmup_steps"], steps)
    ours = schedule(tf.range(steps)).numpy()
    ref = golden["lr_schedule"]
    assert ours.shape == ref.shape and ours[0] == 0.0
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=0)


def test_shape_of_the_curve():
    schedule = WarmupCosine(0.005, 2000, 4200)  # split5: warm-up takes half of the run
    assert float(schedule(1000)) == 0.0025
    assert float(schedule(2000)) == 0.005
    assert abs(float(schedule(3100)) - 0.0025) < 1e-12
    assert float(schedule(4200)) == 0.0


def test_config_round_trip_and_use_in_optimizer():
    schedule = WarmupCosine(0.005, 2000, 81900)
    clone = keras.optimizers.schedules.deserialize(json.loads(json.dumps(keras.optimizers.schedules.serialize(schedule))))
    assert isinstance(clone, WarmupCosine) and clone.get_config() == schedule.get_config()
    var = keras.Variable(np.ones(2, np.float32))
    opt = TorchAdamW(learning_rate=schedule, weight_decay=1e-4)
    opt.apply_gradients([(tf.ones(2), var)])
    np.testing.assert_array_equal(var.numpy(), 1.0)  # the first step uses lr = 0, as upstream
    opt.apply_gradients([(tf.ones(2), var)])
    assert np.all(var.numpy() < 1.0)
