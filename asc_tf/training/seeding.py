"""Per-epoch reseeding of a model's random layers, shared by float training and QAT (one home, imported by both)."""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch` of a run seeded with `seed`."""
    return int(np.random.default_rng([seed, epoch, 7]).integers(2**31 - 1))


def reseed_layers(model: keras.Model, seed: Optional[int], epoch: int) -> None:
    """Reset every random layer's SeedGenerator to a state derived from (seed, epoch)."""
    if seed is None:
        return
    for index, layer in enumerate(model._flatten_layers()):  # noqa: SLF001 (Keras' own layer walk)
        generator = getattr(layer, "seed_generator", None)
        if isinstance(generator, keras.random.SeedGenerator):
            generator.state.assign(np.array([epoch_seed(seed, epoch), index], dtype=generator.state.dtype))
