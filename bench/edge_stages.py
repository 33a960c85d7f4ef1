"""Where the shipped path's time goes, stage by stage, one thread, without TensorFlow: a 44.1 kHz clip resampled,
the numpy front end (reflect pad + framing + window, FFT, power, banded mel, log), input quantization, the
network under LiteRT; and which of the network's ops XNNPACK takes (the rest runs on LiteRT's builtin kernels).

    python bench/tflite_latency.py --save_bundle /tmp/rb_int8                    # needs TF; any bundle will do
    python bench/tflite_latency.py --precision fp16 --save_bundle /tmp/rb_fp16
    python bench/edge_stages.py --bundle /tmp/rb_int8 /tmp/rb_fp16 [--clips 60] [--rounds 5]

Stages are timed in thread CPU time; each round makes one pass over the clips per bundle and measure, in turn, so a
shared machine's load shifts them together; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread for numpy's BLAS too
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402

from bench.pipeline import machine  # noqa: E402


def delegation(path: Path) -> tuple[int, list[str]]:
    """(ops in the network, the ops XNNPACK does not take): with node fusion off each delegated op is its own
    DELEGATE node, so an op whose outputs no DELEGATE node produces runs on a builtin kernel."""
    from asc_tf.console import quiet_stderr
    from asc_tf.export.interpreter import Interpreter

    with quiet_stderr():
        interpreter = Interpreter(model_path=str(path), num_threads=1, experimental_disable_delegate_node_fusion=True)
        interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # noqa: SLF001 (the only listing of delegate nodes)
    produced = {t for op in ops if op["op_name"] == "DELEGATE" for t in op["outputs"]}
    own = [op for op in ops if op["op_name"] != "DELEGATE"]
    return len(own), [f"{op['index']}:{op['op_name']}" for op in own if not set(op["outputs"]) <= produced]


def builtin_kernels(path: Path):
    """The network's interpreter on LiteRT's optimized builtin kernels, without the default XNNPACK delegate."""
    from asc_tf.export.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path), num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def stage_functions(classifier) -> dict:
    """The shipped path cut into stages; each takes the previous stage's output (the clip for the first)."""
    from asc_tf.data.resample import resample

    front = classifier.frontend
    network = classifier.network
    scratch = front._scratch(front.n_frames(classifier.clip_samples))  # noqa: SLF001 (the buffers the FFT reads)

    def frames(x: np.ndarray) -> np.ndarray:  # LogMel._power's first half, as it is written there
        padded = np.pad(x, front.n_fft // 2, mode="reflect")
        view = np.lib.stride_tricks.sliding_window_view(padded[front.offset:], front.window_length)
        np.multiply(view[::front.hop_length][:front.n_frames(x.shape[0])], front.window,
                    out=scratch.frames[:, :front.window_length])
        return scratch.frames

    def power(spectrum: np.ndarray) -> np.ndarray:  # LogMel._power's end
        v = spectrum.view(np.float32)
        np.square(v, out=v)
        return np.add(v[:, 0::2], v[:, 1::2], out=scratch.power)

    def log(mel: np.ndarray) -> np.ndarray:
        np.add(mel, front.log_offset, out=mel)
        return np.log(mel, out=mel).T

    def invoke(q: np.ndarray) -> np.ndarray:
        return network.run_raw(q)

    quantize = classifier.input_quantization.quantize if classifier.input_quantization else \
        (lambda x: np.asarray(x, np.float32))
    return {"resample 44.1 -> 32 kHz": lambda x: resample(x, 44100, 32000),
            "pad + frames x window": frames,
            "FFT (scipy rfft, 65 x 4096, float32)": lambda f: scipy.fft.rfft(f, axis=-1, workers=1),
            "power": power,
            "banded mel (21 blocks)": front.mel,
            "log": log,
            "reshape + quantize": lambda m: quantize(np.asarray(m, np.float32).reshape(classifier.input_shape)),
            "network (set, invoke, get)": invoke}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, nargs="+", required=True, help="export bundles (int8, fp16)")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from asc_tf.data.resample import resample
    from asc_tf.edge import Classifier
    from asc_tf.export.interpreter import describe

    load_before = os.getloadavg()[0]
    classifiers = [Classifier(b, num_threads=1) for b in args.bundle]
    clips = np.random.default_rng(0).normal(0, 0.05, (args.clips, 44100)).astype(np.float32)
    stages = [stage_functions(c) for c in classifiers]
    builtin = [builtin_kernels(b / c.manifest["files"]["network"]["path"]) for b, c in zip(args.bundle, classifiers)]
    times: list[dict[str, list[int]]] = [{} for _ in classifiers]
    quantized = [[fns["reshape + quantize"](c.log_mel(resample(x, 44100, 32000))) for x in clips]
                 for c, fns in zip(classifiers, stages)]
    for _ in range(args.rounds):  # a pass over the clips per bundle and measure, passes in turn (warm caches)
        for i, (c, fns) in enumerate(zip(classifiers, stages)):
            for clip in clips:
                x, start = clip, time.thread_time_ns()
                for name, fn in fns.items():
                    x = fn(x)
                    now = time.thread_time_ns()
                    times[i].setdefault(name, []).append(now - start)
                    start = now
            for clip in clips:
                start = time.thread_time_ns()
                c.predict(resample(clip, 44100, 32000))
                times[i].setdefault("whole (resample + Classifier.predict)", []).append(time.thread_time_ns() - start)
            index = builtin[i].get_input_details()[0]["index"]
            for q in quantized[i]:
                builtin[i].set_tensor(index, q)
                start = time.thread_time_ns()
                builtin[i].invoke()
                times[i].setdefault("network invoke, XNNPACK off (builtin)", []).append(time.thread_time_ns() - start)

    print(f"machine: {machine()}; load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"interpreter {describe()}, numpy {np.__version__}, scipy {scipy.__version__}; "
          f"median thread CPU ms per 1 s clip, {args.clips} clips x {args.rounds} interleaved rounds")
    for bundle, c, t in zip(args.bundle, classifiers, times):
        n_ops, left = delegation(bundle / c.manifest["files"]["network"]["path"])
        print(f"{bundle} ({c.precision}): {n_ops} ops, not delegated to XNNPACK: {', '.join(left) or 'none'}")
        medians = {name: float(np.median(v)) / 1e6 for name, v in t.items()}
        staged = [name for name in stages[0]]
        for name in staged:
            print(f"  {name:40s} {medians[name]:6.3f}")
        print(f"  {'sum of the stages':40s} {sum(medians[n] for n in staged):6.3f}")
        for name in ("whole (resample + Classifier.predict)", "network invoke, XNNPACK off (builtin)"):
            print(f"  {name:40s} {medians[name]:6.3f}")


if __name__ == "__main__":
    main()
