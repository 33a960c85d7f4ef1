"""The edge runtime on tflite_runtime (the 32-bit Arm fallback), in a separate venv made from
requirements-edge-armv7.txt (tflite-runtime 2.14 needs numpy 1.x; this process has numpy 2 and LiteRT):
the same probabilities as under LiteRT, identical int8 outputs with the same (reference) kernels. Also how
close the numpy front end is to the exported one (docs/edge.md's figures)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from asc_tf.edge import Classifier
from asc_tf.export.interpreter import BACKEND
from asc_tf.export.runtime import TFLiteModel
from asc_tf.export.venv import VenvError, cached_venv
from int8_tolerances import INPUT_LOGIT_STEPS, KERNEL_LOGIT_STEPS

REPO = Path(__file__).resolve().parents[1]
ARMV7_REQUIREMENTS = REPO / "requirements-edge-armv7.txt"
PYTHON_ENV = "ASC_TF_TFLITE_RUNTIME_PYTHON"  # a python that has requirements-edge-armv7.txt installed


def _venv_python() -> Path:
    """A venv with requirements-edge-armv7.txt, made once per requirements version under ~/.cache/asc_tf by the
    same cached_venv as the export's tool venvs (whole, under a lock: concurrent or killed runs never share a
    half-made one)."""
    if os.environ.get(PYTHON_ENV):
        return Path(os.environ[PYTHON_ENV])
    try:
        return cached_venv(ARMV7_REQUIREMENTS, "tflite-runtime", timeout=1200)
    except VenvError as error:
        pytest.skip(f"tflite-runtime venv could not be installed: {error}")


@pytest.fixture(scope="module")
def tflite_runtime_python() -> Path:
    return _venv_python()


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(32000) / 32000
    return np.stack([rng.normal(size=32000) * 0.01 * (i + 1) + 0.03 * np.sin(2 * np.pi * 300 * (i + 2) * t)
                     for i in range(4)]).astype(np.float32)


def _in_venv(python: Path, code: str, tmp_path: Path) -> dict:
    """Run `code` with the venv's python (repository on the path); it prints one JSON line, returned."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([str(python), "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_litert_is_the_backend_here():
    assert BACKEND == "ai_edge_litert"


def test_tflite_runtime_backend_gives_litert_results(tflite_runtime_python, int8_export, fp16_export, clips,
                                                     tmp_path):
    int8_network = int8_export.path / int8_export.manifest["files"]["network"]["path"]
    litert = {name: Classifier(bundle.path, num_threads=1) for name, bundle in
              (("int8", int8_export), ("fp16", fp16_export))}
    # the int8 network's inputs: the clips' quantized log-mels, and random int8 tensors
    quantized = [litert["int8"].input_quantization.quantize(litert["int8"].log_mel(c)) for c in clips]
    shape = TFLiteModel(int8_network).input_shape
    raw_inputs = np.concatenate([np.stack(quantized).reshape((-1,) + shape),
                                 np.random.default_rng(0).integers(-128, 128, (4,) + shape).astype(np.int8)])
    np.save(tmp_path / "clips.npy", clips)
    np.save(tmp_path / "raw.npy", raw_inputs)
    out = _in_venv(tflite_runtime_python, f"""
        import json, os, subprocess, sys
        import numpy as np
        import asc_tf.edge
        from asc_tf.edge import Classifier
        from asc_tf.export.interpreter import describe
        from asc_tf.export.runtime import TFLiteModel
        clips, raw = np.load("clips.npy"), np.load("raw.npy")
        result = {{"backend": describe(), "numpy": np.__version__}}
        for name, path in (("int8", {str(int8_export.path)!r}), ("fp16", {str(fp16_export.path)!r})):
            classifier = Classifier(path, num_threads=1)
            result[name] = [classifier.predict(c).tolist() for c in clips]
            result[name + "_logits"] = [classifier.logits(c).tolist() for c in clips]
            result[name + "_log_mel"] = [classifier.log_mel(c).tolist() for c in clips]
        for kernels in ("default", "reference"):
            model = TFLiteModel({str(int8_network)!r}, 1, reference_kernels=kernels == "reference")
            result["raw_" + kernels] = [model.run_raw(x).tolist() for x in raw]
        heavy = ("tensorflow", "keras", "ai_edge_litert")
        result["heavy"] = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        env = {{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}}  # the venv's own packages only
        freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                                env=env)
        result["freeze"] = freeze.stdout.splitlines()
        result["version_line"] = subprocess.run([sys.executable, "-m", "asc_tf.edge", "--version"],
                                                capture_output=True, text=True).stdout
        print(json.dumps(result))
    """, tmp_path)
    assert out["backend"] == "tflite_runtime 2.14.0" and out["numpy"].startswith("1.")
    assert out["heavy"] == []
    assert "interpreter tflite_runtime 2.14.0" in out["version_line"]
    pins = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in
            ARMV7_REQUIREMENTS.read_text().splitlines() if "==" in line and not line.startswith("#")}
    installed = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in out["freeze"]
                 if "==" in line and not line.startswith(("pip==", "setuptools=="))}
    assert installed == pins  # requirements-edge-armv7.txt pins every package it installs
    # the front end under numpy 1.26 / scipy 1.13 equals this one's to float32 rounding
    log_mel = np.stack([litert["fp16"].log_mel(c) for c in clips])
    assert np.abs(np.asarray(out["fp16_log_mel"]) - log_mel).max() <= 1e-5
    # fp16 network: the same probabilities
    fp16 = np.stack([litert["fp16"].predict(c) for c in clips])
    assert np.abs(np.asarray(out["fp16"]) - fp16).max() <= 1e-6
    # int8 network, same (reference) kernels, same inputs: identical outputs
    reference = TFLiteModel(int8_network, 1, reference_kernels=True)
    assert np.array_equal(np.asarray(out["raw_reference"]), np.stack([reference.run_raw(x) for x in raw_inputs]))
    # default kernels are XNNPACK of another version: int8 requantization may round a few steps apart
    default = TFLiteModel(int8_network, 1)
    steps = np.abs(np.asarray(out["raw_default"]) - np.stack([default.run_raw(x) for x in raw_inputs]).astype(int))
    assert steps.max() <= KERNEL_LOGIT_STEPS
    # whole path: the two front ends (numpy 1.26 / scipy 1.13 against this one) may round an input tie apart, then
    # the two XNNPACKs
    scale = litert["int8"].output_quantization.scale
    logits = np.stack([litert["int8"].logits(c) for c in clips])
    assert np.abs(np.asarray(out["int8_logits"]) - logits).max() <= (INPUT_LOGIT_STEPS + KERNEL_LOGIT_STEPS) * scale + 1e-6


def test_numpy_front_end_agrees_with_the_exported_one(int8_export):
    """Not bit-identical (both float32, different FFTs): bounded by log-mel level, on loud to very quiet clips."""
    frontend = TFLiteModel(int8_export.path / int8_export.manifest["files"]["frontend"]["path"], 1)
    numpy_frontend = Classifier(int8_export.path).frontend
    rng = np.random.default_rng(2)
    t = np.arange(32000) / 32000
    values, diffs, relative = [], [], 0.0
    for level in range(-10, -90, -10):
        a = 10 ** (level / 20)
        for clip in (a * rng.normal(size=32000), a * np.sin(2 * np.pi * 1000 * t) + 0.01 * a * rng.normal(size=32000)):
            clip = clip.astype(np.float32)
            x, y = numpy_frontend(clip), frontend(clip[None])[0, ..., 0]
            values.append(x)
            diffs.append(np.abs(x - y))
            relative = max(relative, float(np.abs(np.exp(x) - np.exp(y)).max() / np.exp(x).max()))
    v, d = np.stack(values), np.stack(diffs)
    assert (v < -4).sum() > 10000  # the quiet bands are really there
    assert d[v >= -4].max() <= 1e-4
    assert d[v < -4].max() <= 1e-3
    assert relative <= 5e-6
