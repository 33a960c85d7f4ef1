"""TFLite Model Metadata on the exported end-to-end models, read back with the writer's own library (tflite-support's
MetadataDisplayer, in its venv): what MediaPipe's AudioClassifier and the LiteRT tools need to use a model alone."""

from __future__ import annotations

import numpy as np
import pytest

from asc_tf.data.meta import CLASSES
from asc_tf.export.metadata import WRITER, read_metadata
from asc_tf.export.runtime import TFLiteModel

STANDALONE = ("end_to_end_float32.tflite", "end_to_end_fp16.tflite")


@pytest.fixture(scope="module")
def eval_clips(synthetic_root) -> np.ndarray:
    """The first 8 synthetic evaluation clips at 32 kHz (the project's resampler)."""
    import soundfile as sf

    from asc_tf.data.resample import resample
    from asc_tf.data.synthetic import EVAL_DIR_NAME

    files = sorted((synthetic_root / EVAL_DIR_NAME / "audio").glob("*.wav"), key=lambda p: int(p.stem))[:8]
    return np.stack([resample(*sf.read(path, dtype="float32"), 32000) for path in files])


@pytest.mark.parametrize("precision", ["int8", "fp16"])
@pytest.mark.parametrize("name", STANDALONE)
def test_end_to_end_models_carry_their_metadata(int8_export, fp16_export, precision, name):
    export = int8_export if precision == "int8" else fp16_export
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
    clips = eval_clips
    float32 = TFLiteModel(int8_export.path / "end_to_end_float32.tflite", 1)
    fp16 = TFLiteModel(int8_export.path / "end_to_end_fp16.tflite", 1)
    p32 = np.concatenate([float32(c.reshape(1, -1)) for c in clips])
    p16 = np.concatenate([fp16(c.reshape(1, -1)) for c in clips])
    np.testing.assert_allclose(p32.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(p32 - p16).max() < 5e-3 and (p32.argmax(1) == p16.argmax(1)).all()
