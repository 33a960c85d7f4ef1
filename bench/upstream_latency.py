"""Per clip, one thread, side by side in one process: what ships (a 44.1 kHz clip resampled with
`asc_tf.data.resample`, the numpy front end and the int8 network of an export bundle under LiteRT or
tflite_runtime, via `asc_tf.edge`; no TensorFlow in the process) against upstream's PyTorch eager path
(`mel_forward`: torchaudio Resample + MelSpectrogram + log, then the CP-Mobile network, `bench/upstream_torch.py`).

Needs the edge packages and torch + torchaudio in one environment (not requirements.txt; TensorFlow is not needed):
    python -m venv venv-torch && venv-torch/bin/pip install -r requirements-edge.txt -c constraints-edge.txt \
        torch==2.9.1 'torchaudio==2.9.*'
    python bench/tflite_latency.py --save_bundle /tmp/random_int8     # any int8 bundle will do (needs TF)
    venv-torch/bin/python bench/upstream_latency.py --bundle /tmp/random_int8 [--clips 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread for numpy's BLAS too
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402
from bench.timing import per_clip_ms  # noqa: E402

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
    parser.add_argument("--bundle", type=Path, required=True, help="an int8 export bundle")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best median is kept")
    args = parser.parse_args()

    import torch

    from asc_tf.data.resample import resample
    from asc_tf.edge import Classifier
    from asc_tf.export.interpreter import describe
    from bench.upstream_torch import Upstream

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    load_before = os.getloadavg()[0]
    classifier = Classifier(args.bundle, num_threads=1)
    upstream = Upstream().eval()
    checked = check_upstream(upstream, torch)
    clips = np.random.default_rng(0).normal(0, 0.05, (args.clips, 44100)).astype(np.float32)

    def shipped(x: np.ndarray) -> np.ndarray:
        return classifier.predict(resample(x, 44100, 32000))

    def upstream_eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(upstream(torch.from_numpy(x)[None, None]), dim=1).numpy()

    mels = np.stack([classifier.log_mel(resample(x, 44100, 32000)) for x in clips])
    parts = {"shipped: resample (banded numpy)": (lambda x: resample(x, 44100, 32000), clips),
             "shipped: front end (numpy)": (lambda x: classifier.log_mel(x[:32000]), clips),
             "shipped: int8 network": (classifier.network_logits, mels),
             "upstream: mel_forward (torchaudio)": (lambda x: upstream.mel_forward(torch.from_numpy(x)[None, None]),
                                                    clips),
             "upstream: network (torch)": (lambda m: upstream.model(torch.from_numpy(m)[None, None]), mels)}
    results: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for name, fn in (("shipped (edge runtime)", shipped), ("upstream (torch eager)", upstream_eager)):
            results.setdefault(name, []).append(per_clip_ms(fn, clips))
    with torch.inference_mode():
        for name, (fn, inputs) in parts.items():
            results[name] = [per_clip_ms(fn, inputs)]
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf_keras"})

    print(f"machine: {machine()}; load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"shipped: {args.bundle} ({classifier.precision}), interpreter {describe()}, numpy {np.__version__}; "
          f"TensorFlow/Keras in this process: {', '.join(heavy) or 'none'}")
    print(f"upstream: torch {torch.__version__}, torchaudio {__import__('torchaudio').__version__}, eager, fp32, "
          f"inference_mode, {torch.get_num_threads()} thread; {checked}")
    print(f"per 1 s clip at 44.1 kHz, median of {args.clips} clips, best of {args.rounds} interleaved rounds:")
    for name, runs in results.items():
        wall, cpu = min(runs)
        print(f"  {name:36s} {wall:7.3f} ms wall  {cpu:7.3f} ms CPU")
    (sw, sc), (uw, uc) = min(results["shipped (edge runtime)"]), min(results["upstream (torch eager)"])
    print(f"  upstream / shipped: {uw / sw:.1f}x wall, {uc / sc:.1f}x CPU (target >= 6)")


if __name__ == "__main__":
    main()
