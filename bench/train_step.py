"""Median seconds per training step at batch 256, ours against upstream's PyTorch step, timed in turns in one run.

Ours: the full model (waveform in, in-graph front end, masking, Freq-MixStyle) through Keras' `train_on_batch` with
upstream's optimizer and loss, in variants: `fused` (the default training: fused BatchNorm), `unfused` (the
elementwise BatchNorm of before), `bf16-mixed` / `16-mixed` (`--precision`), `xla` (`--jit_compile`).
Upstream: `bench/upstream_train_step.py` in the torch venv (Resample + MelSpectrogram + masking, Freq-MixStyle,
the network, AdamW + LambdaLR), started once and asked for steps between ours, so both see the same load.

    python -m venv ~/venv-torch && ~/venv-torch/bin/pip install -r bench/requirements-torch.txt
    python bench/train_step.py --torch_python ~/venv-torch/bin/python [--variants fused unfused] [--rounds 3]
    python bench/train_step.py --front_end   # the front end's share of our step (banded and dense mel)
    python bench/train_step.py --device gpu  # on a machine with a GPU (TensorFlow's and torch's): not run here
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"fused": {}, "unfused": {}, "bf16-mixed": {"precision": "bf16-mixed"},
            "16-mixed": {"precision": "16-mixed"}, "xla": {"jit_compile": True}}


def timed_steps(step: Callable[[], None], count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


class Upstream:
    """The torch worker: started (and warmed up) once, then asked for `count` steps at a time over stdin."""

    def __init__(self, python: str, batch_size: int, device: str) -> None:
        golden = Path(os.environ.get("ASC_TF_GOLDEN_DIR", REPO.parent / "shared" / "golden")) / "upstream_golden.npz"
        self.process = subprocess.Popen(
            [python, str(REPO / "bench" / "upstream_train_step.py"), "--golden", str(golden), "--batch_size",
             str(batch_size), "--device", "cuda" if device == "gpu" else "cpu"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.process.stdout.readline())

    def steps(self, count: int) -> list[float]:
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def our_step(variant: str, batch_size: int, device: str) -> Callable[[], None]:
    """A warmed-up `train_on_batch` of the full model in one variant."""
    import keras
    import tensorflow as tf

    from asc_tf import Config, build_model
    from asc_tf.model.layers import TorchBatchNorm
    from asc_tf.training.precision import network_policy
    from asc_tf.training.trainer import compile_model
    from asc_tf.training.xla import use_xla

    config = Config(batch_size=batch_size, **VARIANTS[variant])
    use_xla(config.jit_compile)  # process-wide: compare() runs xla alone
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, batch_size)
    waves = (rng.normal(size=(batch_size, config.sample_rate)) * 0.03).astype(np.float32)
    keras.utils.set_random_seed(0)
    with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        model = build_model(config, network_dtype=network_policy(config.precision))
        for layer in model.get_layer("network").layers:
            if isinstance(layer, TorchBatchNorm):
                layer.fused = variant != "unfused"
        compile_model(model, config, steps=100_000)
        model.train_on_batch(waves, labels)  # trace and warm up
    return lambda: model.train_on_batch(waves, labels)


def compare(args: argparse.Namespace) -> dict:
    """Rounds of `steps` steps per variant and of upstream's, in turns; medians over all rounds."""
    if "xla" in args.variants:  # TensorFlow reads the CPU auto-clustering flag once, before its first function
        if len(args.variants) > 1:
            raise SystemExit("--variants xla runs alone: TensorFlow's XLA setting is process-wide, and changing it "
                             "traces every model again (with XLA)")
        os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") + " --tf_xla_cpu_global_jit").strip()
    load_before = os.getloadavg()
    upstream = Upstream(args.torch_python, args.batch_size, args.device) if args.torch_python else None
    steps = {variant: our_step(variant, args.batch_size, args.device) for variant in args.variants}
    times: dict[str, list[float]] = {name: [] for name in [*steps, *(["upstream"] if upstream else [])]}
    for round_ in range(args.rounds):
        for name, step in steps.items():
            times[name] += timed_steps(step, args.steps)
        if upstream:
            times["upstream"] += upstream.steps(args.steps)
        print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{k} {np.median(v):.3f} s" for k, v in times.items()),
              flush=True)
    if upstream:
        upstream.close()
    medians = {name: float(np.median(values)) for name, values in times.items()}
    return {"machine": machine(), "device": args.device, "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"), "load_before": load_before, "load_after": os.getloadavg(),
            "batch_size": args.batch_size, "steps_per_variant": args.rounds * args.steps, "median_seconds": medians,
            "upstream": upstream.info if upstream else None, "times": times}


def print_table(result: dict) -> None:
    medians, batch = result["median_seconds"], result["batch_size"]
    print(f"machine: {result['machine']} ({result['device']}), {result['date']}, load average "
          f"{result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}")
    if result["upstream"]:
        print(f"upstream: torch {result['upstream']['torch']}, {result['upstream']['threads']} threads")
    print(f"batch {batch}, median of {result['steps_per_variant']} steps each")
    print("| step | s/step | clips/s | / upstream's time |\n|---|---:|---:|---:|")
    for name, seconds in medians.items():
        ratio = f"{seconds / medians['upstream']:.2f}x" if "upstream" in medians else "-"
        print(f"| {name} | {seconds:.3f} | {batch / seconds:.0f} | {ratio} |")


def front_end_share(args: argparse.Namespace) -> None:
    """The front end's share of our step: the network alone (log-mel in), the full model with the banded and the
    dense mel product, and each front end alone (forward as in training)."""
    import keras
    import tensorflow as tf

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
    mel_in, wave_in = keras.Input(log_mel.shape[1:]), keras.Input((config.sample_rate,))
    mixstyle = FreqMixStyle(config.mixstyle_p, config.mixstyle_alpha)
    network_only = keras.Model(mel_in, full.get_layer("network")(mixstyle(mel_in)))
    dense = keras.Model(wave_in, full.get_layer("network")(mixstyle(
        MelFrontend.from_config_object(config, mel_product="dense")(wave_in))))
    for model in (network_only, dense):
        compile_model(model, config, steps=1000)

    def median(step: Callable[[], None]) -> float:
        step()
        return float(np.median(timed_steps(step, args.steps * args.rounds)))

    fronts = {name: tf.function(lambda x, layer=MelFrontend.from_config_object(config, mel_product=name):
                                layer(x, training=True)) for name in ("banded", "dense")}
    front = {name: median(lambda f=f: f(tf.constant(waveform)).numpy()) for name, f in fronts.items()}
    network = median(lambda: network_only.train_on_batch(log_mel, labels))
    full_steps = {"banded": median(lambda: full.train_on_batch(waveform, labels)),
                  "dense": median(lambda: dense.train_on_batch(waveform, labels))}
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    print(f"network alone (log-mel in): {network:.3f} s/step")
    for name, step in full_steps.items():
        print(f"full model, {name} mel (waveform in): {step:.3f} s/step; front end alone {front[name]:.3f} s, "
              f"{front[name] / step * 100:.1f} % of the step")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["fused", "unfused"], choices=tuple(VARIANTS))
    parser.add_argument("--torch_python", help="python of a venv with bench/requirements-torch.txt (upstream's step; "
                        "omitted: ours only)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--front_end", action="store_true", help="the front end's share of our step instead")
    parser.add_argument("--json", type=Path, help="write the figures (and every step's time) here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.front_end:
        front_end_share(args)
        return
    result = compare(args)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
