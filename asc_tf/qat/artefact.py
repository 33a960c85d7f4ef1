"""Where a run keeps its QAT result, `<run>/qat/`, read without importing tfmot (the export uses it).

    qat/model.keras            the full Keras 3 model with the QAT-tuned float weights (front end included)
    qat/network_int8.tflite    the int8 network converted from the QAT model: its scales are QAT's
    qat/info.json              what was run (epochs, learning rate, losses), fake-quant accuracy, audit; written last
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asc_tf.qat.errors import QATError
from asc_tf.training.runs import Run

QAT_DIR = "qat"


@dataclass(frozen=True)
class QATArtefact:
    """Paths of a run's QAT result; complete once `info.json` exists."""

    path: Path

    @property
    def model_file(self) -> Path:
        return self.path / "model.keras"

    @property
    def network_file(self) -> Path:
        return self.path / "network_int8.tflite"

    @property
    def info_file(self) -> Path:
        return self.path / "info.json"

    def exists(self) -> bool:
        return self.info_file.is_file() and self.model_file.is_file() and self.network_file.is_file()

    def info(self) -> dict[str, Any]:
        try:
            return json.loads(self.info_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise QATError(f"{self.info_file}: unreadable QAT record ({error})") from None


def qat_artefact(run: Run) -> QATArtefact:
    return QATArtefact(run.path / QAT_DIR)
