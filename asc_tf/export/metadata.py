"""TFLite Model Metadata on the models a third party loads alone (the end-to-end models): name, version,
description, author, licence, the audio input's sample rate and channels, the label file (the classes in order)
and the output as probabilities; what MediaPipe's AudioClassifier requires ("Audio classifier models require TFLite
Model Metadata"), and what Android Studio and the LiteRT tools display.

Written by tflite-support's audio-classifier metadata writer, which cannot be installed beside TensorFlow (see
requirements-metadata.txt): it runs in its own venv (`asc_tf.export.metadata_writer`), made once under
~/.cache/asc_tf, or in the python named by $ASC_TF_METADATA_PYTHON.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from asc_tf.export.errors import ExportError
from asc_tf.export.venv import VenvError, cached_venv

log = logging.getLogger(__name__)

PYTHON_ENV = "ASC_TF_METADATA_PYTHON"
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-metadata.txt"
WRITER = "tflite-support 0.4.4 (metadata_writers.audio_classifier)"
LABELS = "labels.txt"
DEFAULT_AUTHOR = "asc-tf (a TensorFlow port of the DCASE2024 Task 1 baseline)"
DEFAULT_LICENCE = "not stated: ask the model's provider"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding asc_tf/, put on the writer's path


class MetadataError(ExportError):
    """Metadata that cannot be written or read here; the message says why and what to do."""


@dataclass(frozen=True)
class ModelCard:
    """What the metadata says about one end-to-end model."""

    name: str
    version: str
    description: str
    author: str
    licence: str
    sample_rate: int
    channels: int
    classes: tuple[str, ...]
    input_description: str
    output_description: str


def writer_python() -> Path:
    """$ASC_TF_METADATA_PYTHON, else the cached venv of requirements-metadata.txt (made now when missing)."""
    if os.environ.get(PYTHON_ENV):
        return Path(os.environ[PYTHON_ENV])
    if not REQUIREMENTS.is_file():
        raise MetadataError(f"{REQUIREMENTS.name} not found beside asc_tf/ (an installed package): set {PYTHON_ENV} "
                            "to a python with tflite-support==0.4.4")
    try:
        return cached_venv(REQUIREMENTS, "metadata")
    except VenvError as error:
        raise MetadataError(f"no metadata writer: {error} (set {PYTHON_ENV}, or export with --no_metadata)") from None


def _run(arguments: list[str]) -> str:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHONPATH"] = str(_PACKAGE_ROOT)
    done = subprocess.run([str(writer_python()), "-m", "asc_tf.export.metadata_writer", *arguments],
                          capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MetadataError(f"the metadata writer failed: {reason}")
    return done.stdout


def add_metadata(models: dict[str, bytes], card: ModelCard) -> dict[str, bytes]:
    """The same models (file name -> bytes) with the card's metadata and the label file packed in."""
    with tempfile.TemporaryDirectory(prefix="asc_tf-metadata-") as folder:
        work = Path(folder)
        (work / "card.json").write_text(json.dumps(asdict(card)))
        (work / LABELS).write_text("".join(f"{name}\n" for name in card.classes))
        for name, data in models.items():
            (work / "in").mkdir(exist_ok=True)
            (work / "in" / name).write_bytes(data)
        _run(["write", str(work)])
        return {name: (work / "out" / name).read_bytes() for name in models}


def read_metadata(model: str | Path) -> dict:
    """{"metadata": the metadata as JSON, "files": {name: text}} of the associated files, read back by the writer's
    library (tflite-support's MetadataDisplayer)."""
    return json.loads(_run(["read", str(Path(model).resolve())]))
