"""MediaPipe Tasks' AudioClassifier (what people use for on-device audio classification on Android, iOS, the web and a
Pi) on the exported end-to-end models, as a user runs it (`pip install -r requirements-mediapipe.txt`, in a venv made
once under ~/.cache/asc_tf: MediaPipe cannot be installed beside TensorFlow), in clip mode and in stream mode, against
`asc_tf.edge` on the synthetic evaluation clips (44.1 kHz, 1 s each).

The model is trained 30 epochs on the tiny synthetic set (~70 s; ~0.86 accuracy): the session's 8-epoch run is at
~0.45 with a median top-2 margin of 0.03, so its top-1 flips on any change of the input and would measure nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asc_tf.edge import Classifier
from asc_tf.export.runtime import TFLiteModel
from asc_tf.export.venv import VenvError, cached_venv

REPO = Path(__file__).resolve().parents[1]
PYTHON_ENV = "ASC_TF_MEDIAPIPE_PYTHON"  # a python with requirements-mediapipe.txt installed
# each end-to-end model with the bundle whose network has its precision (float32 and fp16 weights: the fp16 bundle)
MODELS = [("fp16", "end_to_end_float32.tflite"), ("fp16", "end_to_end_fp16.tflite"), ("int8", "end_to_end_int8.tflite")]
# MediaPipe's 44.1 kHz resampler and the project's are both band-limiting filters that differ only near 16 kHz: on a
# typical clip the probabilities move by far less than this; a wrong rate or a missing filter moves most clips by
# more. A median over clips, so that the few clips that sit near a tie (how many depends on the trained network,
# hence on the CPU) neither fail nor hide a regression.
TYPICAL_RESAMPLER_CHANGE = 0.05

# Runs in the MediaPipe venv: argv = model, clips.npy, sample rate; prints one JSON line with every result's
# (timestamp, probabilities) per clip (clip mode) and for the clips streamed back to back in 0.1 s blocks.
RUNNER = r'''
import json, sys
import numpy as np
from mediapipe.tasks.python.audio import audio_classifier
from mediapipe.tasks.python.audio.core.audio_task_running_mode import AudioTaskRunningMode
from mediapipe.tasks.python.components.containers.audio_data import AudioData
from mediapipe.tasks.python.core.base_options import BaseOptions

model, clips, rate = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])

def scores(result):
    (head,) = result.classifications
    out = [0.0] * len(head.categories)
    for category in head.categories:
        out[category.index] = category.score
    return out

base = BaseOptions(model_asset_path=model)
clip_options = audio_classifier.AudioClassifierOptions(base_options=base)
with audio_classifier.AudioClassifier.create_from_options(clip_options) as c:
    clip = [[(r.timestamp_ms, scores(r)) for r in c.classify(AudioData.create_from_array(x, rate))] for x in clips]
stream = []
options = audio_classifier.AudioClassifierOptions(base_options=base, running_mode=AudioTaskRunningMode.AUDIO_STREAM,
                                                  result_callback=lambda r, ms: stream.append((ms, scores(r))))
with audio_classifier.AudioClassifier.create_from_options(options) as c:
    audio, block = np.concatenate(clips), rate // 10
    for start in range(0, len(audio), block):
        c.classify_async(AudioData.create_from_array(audio[start:start + block], rate), start * 1000 // rate)
print(json.dumps({"clip": clip, "stream": stream}))
'''


@pytest.fixture(scope="module")
def mediapipe_python() -> Path:
    if os.environ.get(PYTHON_ENV):
        return Path(os.environ[PYTHON_ENV])
    try:
        return cached_venv(REPO / "requirements-mediapipe.txt", "mediapipe")
    except VenvError as error:
        pytest.fail(str(error))  # PyPI is reachable in CI: a venv that cannot be made is a failure


@pytest.fixture(scope="module")
def confident_run(data_config, shards_dir, tmp_path_factory):
    """A run trained 30 epochs on the tiny synthetic set (the session's run, with more epochs)."""
    from asc_tf.training.trainer import train

    os.environ.setdefault("WANDB_SILENT", "true")
    config = data_config.replace(project_dir=str(tmp_path_factory.mktemp("mediapipe_run")), n_epochs=30,
                                 batch_size=8, lr=0.002, warmup_steps=5, wandb="offline", val_every=30)
    return train(config, verbose=0, progress=False).run


@pytest.fixture(scope="module")
def confident_bundles(confident_run, tmp_path_factory) -> dict[str, Path]:
    """Its fp16 and int8 bundles: each end-to-end model is compared with the edge runtime of its precision."""
    from asc_tf.export.bundle import ExportOptions, export_bundle, load_source

    out = {}
    for precision in ("fp16", "int8"):
        out[precision] = tmp_path_factory.mktemp("mediapipe_export") / precision
        source = load_source(confident_run.run_id, confident_run.load_config())
        export_bundle(source, ExportOptions(precision, out=str(out[precision]), skip_accuracy=True))
    return out


@pytest.fixture(scope="module")
def evaluation(synthetic_root, tmp_path_factory) -> dict:
    """The synthetic evaluation clips as stored (44.1 kHz) and resampled to 32 kHz by the project's resampler."""
    from asc_tf.data.resample import resample
    from asc_tf.data.synthetic import EVAL_DIR_NAME

    files = sorted((synthetic_root / EVAL_DIR_NAME / "audio").glob("*.wav"), key=lambda p: int(p.stem))
    clips, rates = zip(*(sf.read(path, dtype="float32") for path in files))
    assert set(rates) == {44100} and len(files) >= 100
    folder = tmp_path_factory.mktemp("mediapipe_clips")
    at_44k, at_32k = np.stack(clips), resample(np.stack(clips), 44100, 32000)
    np.save(folder / "44100.npy", at_44k)
    np.save(folder / "32000.npy", at_32k)
    return {"folder": folder, "32000": at_32k, "n": len(files)}


def _mediapipe(python: Path, model: Path, folder: Path, rate: int) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), "-c", RUNNER, str(model), str(folder / f"{rate}.npy"), str(rate)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"clip": out["clip"], "stream_ms": [ms for ms, _ in out["stream"]],
            "stream": np.array([p for _, p in out["stream"]])}


@pytest.mark.parametrize("precision, model", MODELS)
def test_mediapipe_audio_classifier_agrees_with_the_edge_runtime(mediapipe_python, confident_bundles, evaluation,
                                                                 precision, model):
    n = evaluation["n"]
    confident_bundle = confident_bundles[precision]
    edge = Classifier(confident_bundle)
    probabilities = np.stack([edge.predict(clip) for clip in evaluation["32000"]])
    top1 = probabilities.argmax(1)
    at_32k = _mediapipe(mediapipe_python, confident_bundle / model, evaluation["folder"], 32000)
    at_44k = _mediapipe(mediapipe_python, confident_bundle / model, evaluation["folder"], 44100)

    # at the model's rate (the clip resampled as the edge runtime does): one window per clip, the edge runtime's
    # top-1; the probabilities differ by the two front ends' float32 (fp16: 0.001 seen) and, int8, by the two
    # calibrations (the end-to-end model's network is calibrated through the TFLite front end: 0.009 seen)
    assert all(len(windows) == 1 and windows[0][0] == 0 for windows in at_32k["clip"])
    p32 = np.array([windows[0][1] for windows in at_32k["clip"]])
    lite = TFLiteModel(confident_bundle / model, 1)  # MediaPipe runs the model as it is: LiteRT's output
    lite_p = np.concatenate([lite(clip[None]) for clip in evaluation["32000"]])
    np.testing.assert_allclose(p32, lite_p, atol=1e-6)  # the same interpreter on the same input: equal by construction
    # against the edge runtime (another front end, int8: another calibration), the probabilities within the bound
    # below, so a top-1 can differ only where the runtime's two best are within twice that bound of each other
    assert np.abs(p32 - probabilities).max() < (0.01 if precision == "fp16" else 0.03)

    # at 44.1 kHz MediaPipe resamples with its own filter, which emits a few samples more than 32,000 per second:
    # a 1 s clip comes back as two windows, the second one almost all padding (the user keeps the first, or
    # passes 32 kHz audio, or at most 44,093 samples)
    assert all([ms for ms, _ in windows] == [0, 1000] for windows in at_44k["clip"])
    p44 = np.array([windows[0][1] for windows in at_44k["clip"]])
    # the resampler's change per clip is small on the typical clip (see TYPICAL_RESAMPLER_CHANGE); no bound on how
    # many top-1s it moves: that is how many clips sit near a tie, which depends on the trained network (the CPU)
    change = np.abs(p44 - probabilities).max(1)
    assert np.median(change) < TYPICAL_RESAMPLER_CHANGE, np.sort(change)

    # stream mode, the clips back to back in 0.1 s blocks: one result per second of audio, the last one when the
    # stream is closed (MediaPipe flushes its resampler and pads the last window); the same top-1 as clip mode
    for stream, clip_mode in ((at_32k, p32), (at_44k, p44)):
        assert len(stream["stream_ms"]) == n and stream["stream_ms"][:n - 1] == [1000 * k for k in range(n - 1)]
        assert np.median(np.abs(stream["stream"] - clip_mode).max(1)) < TYPICAL_RESAMPLER_CHANGE
    np.testing.assert_allclose(at_32k["stream"], p32, atol=1e-6)  # windows aligned with the clips: the same output
