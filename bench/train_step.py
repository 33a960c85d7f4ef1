"""Median seconds per training step at batch 256: the network alone (log-mel in) and the full model
(waveform in, front end included), so the front end's share of a step is visible.

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
    from asc_tf.model import FreqMixStyle
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

    network = median_step_seconds(network_only, log_mel, labels, args.steps)
    model = median_step_seconds(full, waveform, labels, args.steps)
    print(f"machine: {machine()}")
    print(f"batch {args.batch_size}, median of {args.steps} steps")
    print(f"network alone (log-mel in):        {network:.3f} s/step")
    print(f"full model (waveform in):          {model:.3f} s/step")
    print(f"front end's share of a step:       {(model - network) / model * 100:.1f} % "
          f"(+{(model - network) / network * 100:.1f} % over the network alone; target <= 15 %)")


if __name__ == "__main__":
    main()
