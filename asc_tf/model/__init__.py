"""The asc-tf model: waveform -> MelFrontend -> [training: FreqMixStyle] -> CP-Mobile network -> logits."""

from __future__ import annotations

from typing import Optional

import keras

from asc_tf.config import Config
from asc_tf.model.cp_mobile import NETWORK_NAME, build_network, make_divisible, upstream_name, upstream_names
from asc_tf.model.frontend import MelFrontend, mask_along_axis
from asc_tf.model.mixstyle import FreqMixStyle, freq_mixstyle

__all__ = [
    "build_model", "build_network", "MelFrontend", "FreqMixStyle", "freq_mixstyle", "mask_along_axis",
    "make_divisible", "upstream_name", "upstream_names", "NETWORK_NAME",
]


def build_model(config: Optional[Config] = None, network_dtype: Optional[str] = None) -> keras.Model:
    """Waveform `[B, sample_rate]` float32 -> logits `[B, n_classes]`; layers "frontend", "network".

    Masking (in the front end) and Freq-MixStyle run only when called with `training=True`. `network_dtype`:
    a Keras dtype policy for the network alone (mixed-precision training); the front end stays float32.
    """
    config = config or Config()
    waveform = keras.Input((config.sample_rate,), name="waveform", dtype="float32")
    x = MelFrontend.from_config_object(config, name="frontend")(waveform)
    x = FreqMixStyle(config.mixstyle_p, config.mixstyle_alpha, name="mixstyle")(x)
    logits = build_network(config, dtype=network_dtype)(x)
    return keras.Model(waveform, logits, name="cp_mobile")
