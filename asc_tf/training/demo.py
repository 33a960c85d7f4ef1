"""`train.py --demo`: the synthetic dataset, converted, trained and evaluated end to end in minutes on a CPU."""

from __future__ import annotations

import logging
from pathlib import Path

from asc_tf.config import Config

log = logging.getLogger(__name__)

DEMO_DATASET = Path("data/synthetic")
DEMO_SIZE = "medium"
# Upstream's recipe scaled to ~1,600 clips and a few minutes: smaller batches, a short warm-up, few epochs.
DEMO_OVERRIDES = {"subset": 100, "n_epochs": 12, "batch_size": 32, "warmup_steps": 100, "val_every": 4,
                  "experiment_name": "demo"}


def demo_base() -> Config:
    """Defaults of a demo run: upstream's recipe with DEMO_OVERRIDES."""
    return Config(**DEMO_OVERRIDES)


def demo_config(config: Config) -> Config:
    """`config` with the demo's dataset (made if absent) unless one is given, and a seed of 0 unless given."""
    from asc_tf.data import synthetic

    dev_dir = Path(config.dataset_dir) if config.dataset_dir else DEMO_DATASET / synthetic.DEV_DIR_NAME
    if not (dev_dir / "meta.csv").exists():
        log.info("making the synthetic dataset in %s", dev_dir.parent)
        synthetic.generate(dev_dir.parent, seed=0, size=DEMO_SIZE)
    return config.replace(dataset_dir=str(dev_dir), seed=0 if config.seed is None else config.seed)
