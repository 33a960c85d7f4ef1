"""Latency per 1 s clip of what ships, on one thread: the front end in numpy (the edge runtime) and as the TFLite
front-end model, the int8 network under LiteRT, and the total as the edge runtime runs it (asc_tf.edge).

With `--bundle DIR` it times an export bundle (export_tflite.py --int8 or --fp16); without, it exports a randomly
initialised baseline in memory first (int8 calibrated on random audio, or fp16 with `--precision fp16`: latency
does not depend on the weights' values).

    python bench/tflite_latency.py [--bundle DIR] [--clips 50] [--threads 1] [--precision fp16] [--save_bundle DIR]

`--save_bundle DIR` keeps the random baseline's minimal bundle (manifest, network, front end) for
`bench/upstream_latency.py` and `bench/edge_stages.py`, which run without TensorFlow.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402


def random_baseline(precision: str = "int8") -> tuple[bytes, bytes]:
    """(front end, int8 or fp16 network) of an untrained baseline model."""
    import keras

    import asc_tf
    from asc_tf.export import tflite

    keras.utils.set_random_seed(0)
    model = asc_tf.build_model()
    frontend = tflite.frontend_of(model)
    audio = np.random.default_rng(0).normal(0, 0.05, (32, 32000)).astype(np.float32)
    if precision == "fp16":
        return tflite.convert_frontend(frontend, 32000), tflite.convert_network_fp16(tflite.network_of(model))
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
    parser.add_argument("--bundle", type=Path, help="an export bundle (default: export a random baseline)")
    parser.add_argument("--precision", choices=("int8", "fp16"), default="int8",
                        help="the random baseline's network (without --bundle)")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save_bundle", type=Path, help="keep the random baseline's int8 bundle in this new folder")
    args = parser.parse_args()

    from asc_tf.edge.frontend import LogMel
    from asc_tf.export.interpreter import describe
    from asc_tf.export.runtime import TFLiteModel

    if args.bundle:
        from asc_tf.edge import Classifier

        edge = Classifier(args.bundle, num_threads=args.threads)
        frontend_tflite = TFLiteModel(args.bundle / edge.manifest["files"]["frontend"]["path"], args.threads)
        source = str(args.bundle)
    else:
        import tempfile

        if args.save_bundle and args.save_bundle.exists():
            parser.error(f"{args.save_bundle} exists: give a new folder")
        frontend_bytes, network_bytes = random_baseline(args.precision)
        frontend_tflite = TFLiteModel(frontend_bytes, args.threads)
        folder = Path(tempfile.mkdtemp())
        edge = _edge_of(network_bytes, frontend_bytes, args.threads, folder, args.precision)
        if args.save_bundle:
            shutil.move(str(folder), str(args.save_bundle))  # the bundle was written whole in `folder`
        source = "random baseline (exported here)"
    numpy_frontend = edge.frontend
    assert isinstance(numpy_frontend, LogMel)
    waveforms = list(np.random.default_rng(1).normal(0, 0.05, (args.clips, 32000)).astype(np.float32))
    mels = [numpy_frontend(w) for w in waveforms]
    front_numpy = median_ms(numpy_frontend, waveforms)
    front_tflite = median_ms(lambda w: frontend_tflite(w[None]), waveforms)
    network = median_ms(edge.network_logits, mels)
    total = median_ms(edge.predict, waveforms)
    agreement = frontend_agreement(numpy_frontend, lambda w: frontend_tflite(w[None])[0, ..., 0])
    print(f"{args.threads} thread(s), {source}, median of {args.clips} clips; interpreter {describe()}; {machine()}")
    print(f"  front end, numpy (edge runtime)        {front_numpy:7.2f} ms per clip   (target <= 1.0)")
    print(f"  front end, TFLite model (LiteRT)       {front_tflite:7.2f} ms per clip")
    print(f"  network, {edge.precision} (LiteRT)                 {network:7.2f} ms per clip")
    print(f"  total, edge runtime (numpy + {edge.precision})     {total:7.2f} ms per clip   (target <= 1.6)")
    print(f"  numpy vs TFLite front end on {agreement['clips']} clips at -10..-80 dBFS (noise; tones over noise): "
          f"max |log-mel difference| {agreement['loud']:.1e} where log-mel >= -4, {agreement['quiet']:.1e} below "
          f"(largest at log-mel {agreement['at_value']:.1f}, band {agreement['at_band']}); max |mel difference| "
          f"{agreement['relative']:.1e} of the clip's loudest band")


def frontend_agreement(numpy_frontend, tflite_frontend) -> dict:
    """How far the numpy front end is from the TFLite one, by log-mel level, on loud to very quiet clips."""
    rng = np.random.default_rng(2)
    t = np.arange(32000) / 32000
    clips = []
    for level in range(-10, -90, -10):
        a = 10 ** (level / 20)
        for k in range(3):
            clips.append(a * rng.normal(size=32000))
            clips.append(a * np.sin(2 * np.pi * (200 + 800 * k) * t) + 0.01 * a * rng.normal(size=32000))
    values, diffs, relative = [], [], 0.0
    for clip in clips:
        x, y = numpy_frontend(clip.astype(np.float32)), tflite_frontend(clip.astype(np.float32))
        values.append(x)
        diffs.append(np.abs(x - y))
        relative = max(relative, float(np.abs(np.exp(x) - np.exp(y)).max() / np.exp(x).max()))
    v, d = np.stack(values), np.stack(diffs)
    where = np.unravel_index(int(d.argmax()), d.shape)
    return {"clips": len(clips), "loud": float(d[v >= -4].max()), "quiet": float(d[v < -4].max()),
            "at_value": float(v[where]), "at_band": int(where[1]), "relative": relative}


def _edge_of(network: bytes, frontend: bytes, threads: int, folder: Path, precision: str = "int8"):
    """An edge Classifier over in-memory models: a minimal bundle (manifest, network and front-end files, which the
    manifest checks need) in `folder`."""
    import hashlib
    import json

    from asc_tf import Config
    from asc_tf.data.meta import CLASSES
    from asc_tf.edge import Classifier
    from asc_tf.export.runtime import TFLiteModel, tensor_io

    config = Config()
    network_file = f"network_{precision}.tflite"
    (folder / network_file).write_bytes(network)
    (folder / "frontend_float32.tflite").write_bytes(frontend)
    model, front = TFLiteModel(network), TFLiteModel(frontend)
    entry = lambda name, data: {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}  # noqa: E731
    manifest = {"format": "asc-tf-export/1", "precision": precision, "classes": list(CLASSES),
                "sample_rate": config.sample_rate, "clip_samples": config.sample_rate, "files": {"network": entry(network_file, network),
                                                          "frontend": entry("frontend_float32.tflite", frontend)},
                "inputs": {"network": tensor_io(model.input), "frontend": tensor_io(front.input)},
                "outputs": {"network": tensor_io(model.output), "frontend": tensor_io(front.output)},
                "frontend": {"sample_rate": config.sample_rate, "n_fft": config.n_fft,
                             "window_length": config.window_length, "hop_length": config.hop_length,
                             "n_mels": config.n_mels, "f_min": config.f_min, "f_max": config.f_max}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return Classifier(folder, num_threads=threads)


if __name__ == "__main__":
    main()
