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


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """The tiny synthetic dataset (development + evaluation folders) in the easy profile (a model learns it in
    seconds, so tests comparing predictions can fail for real), made once per session."""
    from asc_tf.data import synthetic

    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root, seed=0, size="tiny", difficulty="easy")
    return root


@pytest.fixture(scope="session")
def dataset_dir(synthetic_root) -> Path:
    from asc_tf.data.synthetic import DEV_DIR_NAME

    return synthetic_root / DEV_DIR_NAME


@pytest.fixture(scope="session")
def data_config(dataset_dir, tmp_path_factory):
    """Config pointing at the synthetic dataset, small shards (several per tier), in-process conversion."""
    from asc_tf.config import Config

    return Config(dataset_dir=str(dataset_dir), tfrecords_dir=str(tmp_path_factory.mktemp("tfrecords")),
                  clips_per_shard=32, num_workers=1, batch_size=16, seed=0)


@pytest.fixture(scope="session")
def shards_dir(data_config) -> Path:
    """The synthetic dataset converted once per session."""
    from asc_tf.data.convert import convert_dataset

    return convert_dataset(data_config, progress=False)


@pytest.fixture(scope="session")
def trained_run(data_config, shards_dir, tmp_path_factory):
    """A run trained 8 epochs on the tiny synthetic set (W&B offline: no network, no login), shared by the
    tests that read, evaluate, export or predict with a run. Small batches and lr make it learn in ~20 s
    (macro accuracy ~0.55 on the test split), so comparisons of its predictions can fail for real."""
    from asc_tf.training.trainer import train

    os.environ.setdefault("WANDB_SILENT", "true")
    config = data_config.replace(project_dir=str(tmp_path_factory.mktemp("trained_run")), n_epochs=8,
                                 batch_size=8, lr=0.002, warmup_steps=5, wandb="offline", val_every=4)
    return train(config, verbose=0, progress=False)


def _export(trained_run, tmp_path_factory, precision: str):
    from asc_tf.export.bundle import ExportOptions, export_bundle, load_source

    source = load_source(trained_run.run.run_id, trained_run.run.load_config())
    return export_bundle(source, ExportOptions(precision, out=str(tmp_path_factory.mktemp("exports") / precision)))


@pytest.fixture(scope="session")
def int8_export(trained_run, tmp_path_factory):
    """The trained run exported as an int8 bundle (default options), once per session."""
    return _export(trained_run, tmp_path_factory, "int8")


@pytest.fixture(scope="session")
def fp16_export(trained_run, tmp_path_factory):
    """The trained run exported as an fp16 bundle, once per session."""
    return _export(trained_run, tmp_path_factory, "fp16")
