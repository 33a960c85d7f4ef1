"""TFLite Model Metadata on the exported end-to-end models, read back with the writer's own library (tflite-support's
MetadataDisplayer, in its venv): what MediaPipe's AudioClassifier and the LiteRT tools need to use a model alone."""

from __future__ import annotations

import numpy as np
import pytest

from asc_tf.data.meta import CLASSES
from asc_tf.export.metadata import WRITER, read_metadata
from asc_tf.export.runtime import TFLiteModel

STANDALONE = ("end_to_end_float32.tflite", "end_to_end_fp16.tflite", "end_to_end_int8.tflite")


@pytest.fixture(scope="module")
def eval_clips(synthetic_root) -> np.ndarray:
    """The synthetic evaluation clips at 32 kHz (the project's resampler)."""
    import soundfile as sf

    from asc_tf.data.resample import resample
    from asc_tf.data.synthetic import EVAL_DIR_NAME

    files = sorted((synthetic_root / EVAL_DIR_NAME / "audio").glob("*.wav"), key=lambda p: int(p.stem))
    return np.stack([resample(*sf.read(path, dtype="float32"), 32000) for path in files])


@pytest.mark.parametrize("precision", ["int8", "fp16"])
@pytest.mark.parametrize("name", STANDALONE)
def test_end_to_end_models_carry_their_metadata(int8_export, fp16_export, precision, name):
    export = int8_export if precision == "int8" else fp16_export
    if name == "end_to_end_int8.tflite" and precision == "fp16":
        assert not (export.path / name).exists()  # an int8 network only in int8 bundles
        return
    section = export.manifest["metadata"]
    assert section.get("writer") == WRITER, section  # written, not skipped
    assert name in section["models"]
    read = read_metadata(export.path / name)
    metadata = read["metadata"]
    assert metadata["name"].startswith("asc-tf CP-Mobile") and metadata["version"] == section["version"]
    assert metadata["author"] and metadata["license"] == section["licence"]
    assert "32000 Hz" in metadata["description"] and "10 scenes" in metadata["description"]
    (graph,) = metadata["subgraph_metadata"]
    (audio,) = graph["input_tensor_metadata"]
    assert audio["content"]["content_properties_type"] == "AudioProperties"
    assert audio["content"]["content_properties"] == {"sample_rate": 32000, "channels": 1}
    (scores,) = graph["output_tensor_metadata"]
    assert scores["name"] == "probabilities" and scores["stats"] == {"max": [1.0], "min": [0.0]}
    (labels,) = scores["associated_files"]
    assert labels["type"] == "TENSOR_AXIS_LABELS"
    assert read["files"][labels["name"]].splitlines() == list(CLASSES)


def test_metadata_changes_no_output(int8_export, eval_clips):
    """The float32 and fp16 end-to-end models (metadata packed in) run under LiteRT and agree with the manifest's
    front end + network path: probabilities within fp16's rounding of each other, the same classes."""
    clips = eval_clips[:8]
    float32 = TFLiteModel(int8_export.path / "end_to_end_float32.tflite", 1)
    fp16 = TFLiteModel(int8_export.path / "end_to_end_fp16.tflite", 1)
    p32 = np.concatenate([float32(c.reshape(1, -1)) for c in clips])
    p16 = np.concatenate([fp16(c.reshape(1, -1)) for c in clips])
    np.testing.assert_allclose(p32.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(p32 - p16).max() < 5e-3 and (p32.argmax(1) == p16.argmax(1)).all()


def test_int8_end_to_end_model_keeps_the_front_end_float(int8_export, eval_clips):
    """end_to_end_int8.tflite: the front end in float32 (quantized, the log-mel is ruined), the network in int8, and
    the top-1 of `asc_tf.edge` (numpy front end + network_int8.tflite) on the evaluation clips."""
    model = TFLiteModel(int8_export.path / "end_to_end_int8.tflite", 1)
    assert model.input["dtype"] == np.float32 and model.output["dtype"] == np.float32
    tensors = {t["index"]: t for t in model.interpreter.get_tensor_details()}
    kinds: dict[str, set] = {}
    for op in model.interpreter._get_ops_details():
        kinds.setdefault(op["op_name"], set()).update(np.dtype(tensors[i]["dtype"]).name for i in op["outputs"])
    assert kinds["RFFT2D"] == {"complex64"} and kinds["LOG"] == {"float32"} and kinds["FULLY_CONNECTED"] == {"float32"}
    assert kinds["CONV_2D"] == kinds["DEPTHWISE_CONV_2D"] == {"int8"} and kinds["QUANTIZE"] == {"int8"}
    assert int8_export.manifest["files"]["end_to_end_int8"]["path"] == "end_to_end_int8.tflite"
    from asc_tf.edge import Classifier

    edge = Classifier(int8_export.path)
    ours = np.stack([edge.predict(clip) for clip in eval_clips])
    theirs = np.concatenate([model(clip.reshape(1, -1)) for clip in eval_clips])
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.98 and np.abs(ours - theirs).max() < 0.05


def _system_libusb() -> list[str]:
    """The system's libusb-1.0.so.0 files, as the dynamic linker's cache lists them (none on a fresh Debian)."""
    import subprocess

    listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    return sorted({line.split("=>")[-1].strip() for line in listed.splitlines() if "libusb-1.0.so.0 " in line})


@pytest.fixture(scope="module")
def writer_without_system_libusb(tmp_path_factory):
    """A python for the metadata writer that cannot reach the system's libusb-1.0 (issue 28: tflite-support links
    it, fresh machines and slim containers lack it): the writer venv's python, run in a mount namespace where every
    system copy is hidden under an empty file; on a machine without one, the venv's python itself."""
    import os
    import shutil

    from asc_tf.export.metadata import writer_python

    python = str(writer_python())
    hidden = _system_libusb()
    if not hidden:
        return python, hidden
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip(f"the system has {hidden} and hiding it needs root and unshare (a mount namespace)")
    mounts = "; ".join(f"mount --bind /dev/null {path}" for path in hidden)
    wrapper = tmp_path_factory.mktemp("no-libusb") / "python"
    wrapper.write_text(f"#!/bin/sh\nexec unshare -m sh -c '{mounts}; exec \"$0\" \"$@\"' {python} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper), hidden


def test_the_hidden_libusb_is_really_out_of_reach(writer_without_system_libusb):
    """The premise of the next test, which could otherwise pass vacuously: in that python the system's libusb does
    not load, and tflite-support's native module does not import without the writer's own copy loaded first."""
    import subprocess

    python, _ = writer_without_system_libusb
    system = subprocess.run([python, "-c", "import ctypes; ctypes.CDLL('libusb-1.0.so.0')"], capture_output=True)
    assert system.returncode != 0
    bare = subprocess.run([python, "-c", "import tflite_support.metadata"], capture_output=True, text=True)
    assert bare.returncode != 0 and "libusb-1.0.so.0" in bare.stderr


def test_metadata_is_written_without_a_system_libusb(writer_without_system_libusb, int8_export, monkeypatch):
    """The export's writer (tflite-support, with libusb-package's libusb-1.0 loaded first) packs the metadata where no
    system libusb exists, and the model read back carries it."""
    from asc_tf.export.metadata import PYTHON_ENV, ModelCard, add_metadata

    python, _ = writer_without_system_libusb
    monkeypatch.setenv(PYTHON_ENV, python)
    plain = (int8_export.path / "frontend_float32.tflite").read_bytes()  # audio in, no metadata yet
    card = ModelCard(name="no-libusb check", version="1", description="d", author="a", licence="l", sample_rate=32000,
                     channels=1, classes=tuple(CLASSES), input_description="audio", output_description="scores")
    written = add_metadata({"m.tflite": plain}, card)["m.tflite"]
    assert written != plain
    monkeypatch.delenv(PYTHON_ENV)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "m.tflite"
        model.write_bytes(written)
        read = read_metadata(model)
    assert read["metadata"]["name"] == "no-libusb check"
    assert read["files"]["labels.txt"].splitlines() == list(CLASSES)


def test_require_metadata_refuses_and_writes_nothing(trained_run, tmp_path, monkeypatch):
    """A writer that fails: by default the export warns and records why (the manifest); with --require_metadata it
    is an error before anything is written."""
    from asc_tf.export.bundle import ExportOptions, export_bundle, load_source
    from asc_tf.export.metadata import PYTHON_ENV, MetadataError

    monkeypatch.setenv(PYTHON_ENV, "/bin/false")
    source = load_source(trained_run.run.run_id, trained_run.run.load_config())
    out = tmp_path / "required"
    with pytest.raises(MetadataError, match="--require_metadata: nothing exported"):
        export_bundle(source, ExportOptions("fp16", out=str(out), skip_accuracy=True, require_metadata=True))
    assert not out.exists()
