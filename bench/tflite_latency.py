"""LiteRT latency per 1 s clip of what ships: the float front end, the int8 network, and both, on one thread.

With `--bundle DIR` it times an export bundle (export_tflite.py --int8); without, it exports a randomly
initialised baseline in memory first (calibrated on random audio: latency does not depend on
the weights' values).

    python bench/tflite_latency.py [--bundle DIR] [--clips 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402


def random_baseline() -> tuple[bytes, bytes]:
    """(front end, int8 network) of an untrained baseline model."""
    import keras

    import asc_tf
    from asc_tf.export import tflite

    keras.utils.set_random_seed(0)
    model = asc_tf.build_model()
    frontend = tflite.frontend_of(model)
    audio = np.random.default_rng(0).normal(0, 0.05, (32, 32000)).astype(np.float32)
    mels = [m[None] for m in np.asarray(frontend(audio, training=False))]
    return tflite.convert_frontend(frontend, 32000), tflite.convert_network_int8(tflite.network_of(model), mels)


def median_ms(fn, inputs: list[np.ndarray]) -> float:
    fn(inputs[0])  # warm-up
    times = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="an int8 export bundle (default: export a random baseline)")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from asc_tf.export.runtime import ExportedClassifier

    if args.bundle:
        from asc_tf.export.bundle import load_bundle

        classifier = load_bundle(args.bundle).classifier(num_threads=args.threads)
        source = str(args.bundle)
    else:
        frontend, network = random_baseline()
        classifier = ExportedClassifier(frontend, network, num_threads=args.threads)
        source = "random baseline (exported here)"
    waveforms = list(np.random.default_rng(1).normal(0, 0.05, (args.clips, 32000)).astype(np.float32))
    mels = [classifier.log_mel(w) for w in waveforms]
    front = median_ms(classifier.log_mel, waveforms)
    network = median_ms(classifier.network, mels)
    both = median_ms(classifier.logits, waveforms)
    print(f"LiteRT {args.threads} thread(s), {source}, median of {args.clips} clips; {machine()}")
    print(f"  front end (float32)       {front:7.2f} ms per clip")
    print(f"  network (int8)            {network:7.2f} ms per clip")
    print(f"  front end + int8 network  {both:7.2f} ms per clip")


if __name__ == "__main__":
    main()
