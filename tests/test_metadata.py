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
