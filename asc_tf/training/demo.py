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
    """`config` with the demo's dataset (made if absent, in the `synthetic_difficulty` profile) unless one is
    given, and a seed of 0 unless given. A demo dataset of another profile is refused, never overwritten."""
    from asc_tf.data import synthetic
    from asc_tf.training.runs import RunError  # here: train.py imports demo_base before TensorFlow

    dev_dir = Path(config.dataset_dir) if config.dataset_dir else DEMO_DATASET / synthetic.DEV_DIR_NAME
    if not (dev_dir / "meta.csv").exists():
        log.info("making the synthetic dataset (%s profile) in %s", config.synthetic_difficulty, dev_dir.parent)
        synthetic.generate(dev_dir.parent, seed=0, size=DEMO_SIZE, difficulty=config.synthetic_difficulty)
    elif not config.dataset_dir:
        made = synthetic.read_description(dev_dir.parent).get("difficulty", "easy")  # older datasets: easy
        if made != config.synthetic_difficulty:
            raise RunError(f"{dev_dir.parent} holds the {made!r} synthetic dataset, not {config.synthetic_difficulty!r}: "
                           f"remove it (and tfrecords/{synthetic.DEV_DIR_NAME}) to make the new one, or pass "
                           f"--synthetic_difficulty {made}")
    return config.replace(dataset_dir=str(dev_dir), seed=0 if config.seed is None else config.seed)
