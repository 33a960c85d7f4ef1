"""Shared, session-scoped fixtures: the golden upstream tensors, the synthetic dataset, its shards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN_ENV = "ASC_TF_GOLDEN_DIR"


def golden_dir() -> Path:
    """`../shared/golden` beside the checkout (as CI lays it out), or $ASC_TF_GOLDEN_DIR."""
    path = Path(os.environ.get(GOLDEN_ENV, REPO.parent / "shared" / "golden"))
    if not (path / "upstream_golden.npz").exists():
        raise FileNotFoundError(
            f"golden tensors not found in {path}: set {GOLDEN_ENV} to the folder holding upstream_golden.npz"
        )
    return path


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    """Upstream's golden arrays (PyTorch layouts), loaded once."""
    with np.load(golden_dir() / "upstream_golden.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def golden_meta() -> dict:
    """Upstream's golden metadata (config, torchinfo layer table, ...)."""
    return json.loads((golden_dir() / "upstream_golden.json").read_text())
