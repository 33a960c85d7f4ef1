"""Median seconds per training step at batch 256: the network alone (log-mel in) and the full model
(waveform in, front end included) with the banded mel product and with the dense one, so the front end's share
of a step is visible.

Both use upstream's optimizer and loss (TorchAdamW + warm-up/cosine, cross-entropy) through Keras'
`train_on_batch`, with augmentation on (masking, Freq-MixStyle), on random inputs of the real shapes.

    python bench/train_step.py [--batch_size 256] [--steps 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402


class _Callable:
    """A function timed like a model's step (the front end alone, forward as in training)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def train_on_batch(self, inputs, labels) -> None:
        self.fn(inputs).numpy()


def median_step_seconds(model, inputs, labels, steps: int) -> float:
    model.train_on_batch(inputs, labels)  # trace and warm up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(inputs, labels)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=7)
    args = parser.parse_args()

    import keras

    from asc_tf import Config, build_model
    from asc_tf.model import FreqMixStyle, MelFrontend
    from asc_tf.training.trainer import compile_model

    config = Config(batch_size=args.batch_size)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, args.batch_size)
    waveform = (rng.normal(size=(args.batch_size, config.sample_rate)) * 0.03).astype(np.float32)

    full = build_model(config)
    compile_model(full, config, steps=1000)
    log_mel = full.get_layer("frontend")(waveform).numpy()
    mel_in = keras.Input(log_mel.shape[1:])
    network_only = keras.Model(mel_in, full.get_layer("network")(
        FreqMixStyle(config.mixstyle_p, config.mixstyle_alpha)(mel_in)))
    compile_model(network_only, config, steps=1000)
    wave_in = keras.Input((config.sample_rate,))
    dense = keras.Model(wave_in, full.get_layer("network")(FreqMixStyle(config.mixstyle_p, config.mixstyle_alpha)(
        MelFrontend.from_config_object(config, mel_product="dense")(wave_in))))
    compile_model(dense, config, steps=1000)

    import tensorflow as tf

    fronts = {name: tf.function(lambda x, layer=MelFrontend.from_config_object(config, mel_product=name):
                                layer(x, training=True)) for name in ("banded", "dense")}
    front_seconds = {name: median_step_seconds(_Callable(f), tf.constant(waveform), None, args.steps)
                     for name, f in fronts.items()}
    network = median_step_seconds(network_only, log_mel, labels, args.steps)
    banded = median_step_seconds(full, waveform, labels, args.steps)
    dense_step = median_step_seconds(dense, waveform, labels, args.steps)
    print(f"machine: {machine()}")
    print(f"batch {args.batch_size}, median of {args.steps} steps")
    print(f"network alone (log-mel in):          {network:.3f} s/step")
    for name, step in (("banded", banded), ("dense", dense_step)):
        print(f"full model, {name} mel (waveform in): {step:.3f} s/step; front end alone {front_seconds[name]:.3f} s, "
              f"{front_seconds[name] / step * 100:.1f} % of the step (step difference: "
              f"{(step - network) / step * 100:.1f} %)" + ("  target <= 10 %" if name == "banded" else ""))

if __name__ == "__main__":
    main()
