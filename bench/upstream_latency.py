"""Per clip, one thread, side by side in one process: what ships (a 44.1 kHz clip resampled with
`asc_tf.data.resample`, the numpy front end and the int8 network of an export bundle under LiteRT or
tflite_runtime, via `asc_tf.edge`; no TensorFlow in the process) against upstream's PyTorch eager path
(`mel_forward`: torchaudio Resample + MelSpectrogram + log, then the CP-Mobile network, `bench/upstream_torch.py`).

Needs the edge packages and torch + torchaudio in one environment (not requirements.txt; TensorFlow is not needed):
    python -m venv venv-torch && venv-torch/bin/pip install -r requirements-edge.txt -c constraints-edge.txt \
        torch==2.9.1 'torchaudio==2.9.*'
    python bench/tflite_latency.py --save_bundle /tmp/random_int8     # any int8 bundle will do (needs TF)
    python bench/tflite_latency.py --precision fp16 --save_bundle /tmp/random_fp16    # optional, for comparison
    venv-torch/bin/python bench/upstream_latency.py --bundle /tmp/random_int8 [/tmp/random_fp16] [--clips 100]

With several bundles, each is one more shipped side in the same interleaved rounds (the 6x budget line is about the
first). Wall time of a long call includes the other processes' share of the CPU on a loaded machine (upstream's
path is preempted more often than the shorter shipped one; the involuntary context switches per clip are printed):
the CPU ratio is the one that load changes least.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread for numpy's BLAS too
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402
from bench.timing import per_clip_ms  # noqa: E402

RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)  # Linux: this thread's switches only
GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "upstream_golden.npz"



def check_upstream(upstream, torch) -> str:
    """Load the golden initial weights and compare with upstream's golden log-mel and eval logits."""
    if not GOLDEN.exists():
        return "golden tensors not found: upstream side not checked"
    with np.load(GOLDEN) as golden:
        state = {k[len("init."):]: torch.from_numpy(golden[k]) for k in golden.files if k.startswith("init.")}
        upstream.model.load_state_dict(state)
        with torch.inference_mode():
            mel = upstream.mel_forward(torch.from_numpy(golden["waveform_44k"])).numpy()
            logits = upstream.model(torch.from_numpy(golden["mel_log"])).numpy()
        return (f"upstream side checked against the golden tensors: log-mel max |diff| "
                f"{np.abs(mel - golden['mel_log']).max():.1e}, eval logits max |diff| "
                f"{np.abs(logits - golden['logits_eval']).max():.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, nargs="+", required=True,
                        help="export bundles: an int8 one first, others (fp16) for comparison")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best median is kept")
    args = parser.parse_args()

    import scipy.fft
    import torch

    from asc_tf.data.resample import resample
    from asc_tf.edge import Classifier
    from asc_tf.export.interpreter import describe
    from bench.upstream_torch import Upstream

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    load_before = os.getloadavg()[0]
    classifiers = [Classifier(b, num_threads=1) for b in args.bundle]
    classifier = classifiers[0]
    upstream = Upstream().eval()
    checked = check_upstream(upstream, torch)
    clips = np.random.default_rng(0).normal(0, 0.05, (args.clips, 44100)).astype(np.float32)

    def shipped(c):
        return lambda x: c.predict(resample(x, 44100, 32000))

    def upstream_eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(upstream(torch.from_numpy(x)[None, None]), dim=1).numpy()

    mels = np.stack([classifier.log_mel(resample(x, 44100, 32000)) for x in clips])
    frames = np.zeros((65, 4096), np.float32)  # windowed frames in a zero-padded buffer, as the front end has them
    frames[:, :3072] = np.random.default_rng(1).normal(0, 0.05, (65, 3072)) * classifier.frontend.window
    frames = [frames] * len(clips)
    parts = {"shipped: resample (banded numpy)": (lambda x: resample(x, 44100, 32000), clips),
             "shipped: front end (numpy)": (lambda x: classifier.log_mel(x[:32000]), clips),
             "  of which the FFT (scipy, 65 x 4096)": (lambda f: scipy.fft.rfft(f, axis=-1, workers=1), frames),
             **{f"shipped: {c.precision} network": (c.network_logits, mels) for c in classifiers},
             "upstream: mel_forward (torchaudio)": (lambda x: upstream.mel_forward(torch.from_numpy(x)[None, None]),
                                                    clips),
             "upstream: network (torch)": (lambda m: upstream.model(torch.from_numpy(m)[None, None]), mels)}
    results: dict[str, list[tuple[float, float]]] = {}
    preempted: dict[str, int] = {}
    sides = [(f"shipped (edge runtime, {c.precision})", shipped(c)) for c in classifiers]
    for _ in range(args.rounds):
        for name, fn in sides + [("upstream (torch eager)", upstream_eager)]:
            before = resource.getrusage(RUSAGE_THREAD).ru_nivcsw
            results.setdefault(name, []).append(per_clip_ms(fn, clips))
            preempted[name] = preempted.get(name, 0) + resource.getrusage(RUSAGE_THREAD).ru_nivcsw - before
    with torch.inference_mode():
        for name, (fn, inputs) in parts.items():
            results[name] = [per_clip_ms(fn, inputs)]
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf_keras"})

    print(f"machine: {machine()}; load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"shipped: {', '.join(f'{b} ({c.precision})' for b, c in zip(args.bundle, classifiers))}, "
          f"interpreter {describe()}, numpy {np.__version__}, scipy {scipy.__version__}; "
          f"TensorFlow/Keras in this process: {', '.join(heavy) or 'none'}")
    print(f"upstream: torch {torch.__version__}, torchaudio {__import__('torchaudio').__version__}, eager, fp32, "
          f"inference_mode, {torch.get_num_threads()} thread; {checked}")
    print(f"per 1 s clip at 44.1 kHz, median of {args.clips} clips, best of {args.rounds} interleaved rounds:")
    for name, runs in results.items():
        wall, cpu = min(runs)
        switches = f"  {preempted[name] / (len(clips) + 1) / len(runs):.2f} preemptions per clip" \
            if name in preempted else ""
        print(f"  {name:40s} {wall:7.3f} ms wall  {cpu:7.3f} ms CPU{switches}")
    (uw, uc) = min(results["upstream (torch eager)"])
    for name, _ in sides:
        sw, sc = min(results[name])
        print(f"  upstream / {name}: {uw / sw:.1f}x wall, {uc / sc:.1f}x CPU (target >= 6)")
    network = min(results[f"shipped: {classifier.precision} network"])
    fft = min(results["  of which the FFT (scipy, 65 x 4096)"])
    print(f"  6x budget: upstream / 6 = {uw / 6:.3f} ms wall, {uc / 6:.3f} ms CPU; the {classifier.precision} network "
          f"alone takes {network[0]:.3f} / {network[1]:.3f}, with the FFT alone {network[0] + fft[0]:.3f} / "
          f"{network[1] + fft[1]:.3f} ms (wall / CPU)")


if __name__ == "__main__":
    main()
