"""CP-Mobile, upstream's network (`models/baseline.py`), as a flat functional Keras model.

Log-mel `[B, F, T, 1]` in, logits `[B, n_classes]` out. Layers are named after upstream's modules
(`s1_b3_dw_conv` is `stages.s1.b3.block.1.0`) so weights map by name; `upstream_names` gives the map.
"""

from __future__ import annotations

import math
import re
from typing import Optional

import keras

from asc_tf.config import Config
from asc_tf.model.layers import StridedDepthwiseConv2D, TorchBatchNorm

BN_MOMENTUM = 0.9  # torch momentum 0.1
BN_EPSILON = 1e-5  # torch default
NETWORK_NAME = "network"
_ROLES = ("exp", "dw", "proj")  # upstream block.0, block.1, block.2


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Upstream's channel rounding: nearest multiple of `divisor`, never more than 10 % below `value`."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * value:
        new_v += divisor
    return new_v


def stage_channels(config: Config) -> list[int]:
    """Output channels of each stage (upstream: [32, 56, 104] for the baseline)."""
    base = make_divisible(config.base_channels, 8)
    return [make_divisible(base * config.channels_multiplier**s, 8) for s in range(len(config.n_blocks))]


def block_strides(config: Config) -> dict[int, tuple[int, int]]:
    """Block number (from 1) -> (freq, time) stride, from the flat `strides` triples of the config."""
    flat = list(config.strides)
    if len(flat) % 3:
        raise ValueError(f"strides must be triples BLOCK FREQ TIME, got {flat}")
    out = {}
    for i in range(0, len(flat), 3):
        block, freq, time = (int(v) for v in flat[i : i + 3])
        if not 1 <= block <= sum(config.n_blocks):
            raise ValueError(f"strides name block {block}, but the network has blocks 1..{sum(config.n_blocks)}")
        out[block] = (freq, time)
    return out


def _kaiming_fan_out(out_channels: int, kernel: int) -> keras.initializers.Initializer:
    """torch kaiming_normal_(mode='fan_out'): plain (not truncated) normal, std sqrt(2 / (C_out*kh*kw))."""
    return keras.initializers.RandomNormal(stddev=math.sqrt(2.0 / (out_channels * kernel * kernel)))


def _batch_norm(x: keras.KerasTensor, name: str, dtype: Optional[str]) -> keras.KerasTensor:
    return TorchBatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, dtype=dtype)(x)


def _conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    stride: tuple[int, int],
    name: str,
    activation: bool,
    depthwise: bool,
    dtype: Optional[str],
) -> keras.KerasTensor:
    """torchvision Conv2dNormActivation: conv (no bias, symmetric padding (k-1)//2) -> BN -> [ReLU]."""
    if kernel > 1:
        x = keras.layers.ZeroPadding2D((kernel - 1) // 2, name=f"{name}_pad", dtype=dtype)(x)
    if depthwise:
        x = StridedDepthwiseConv2D(
            kernel, strides=stride, padding="valid", use_bias=False, name=f"{name}_conv", dtype=dtype,
            depthwise_initializer=_kaiming_fan_out(filters, kernel),
        )(x)
    else:
        x = keras.layers.Conv2D(
            filters, kernel, strides=stride, padding="valid", use_bias=False, name=f"{name}_conv", dtype=dtype,
            kernel_initializer=_kaiming_fan_out(filters, kernel),
        )(x)
    x = _batch_norm(x, f"{name}_bn", dtype)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)
    return x


def _block(
    x: keras.KerasTensor,
    in_ch: int,
    out_ch: int,
    expansion_rate: float,
    stride: tuple[int, int],
    name: str,
    dtype: Optional[str],
) -> keras.KerasTensor:
    """Inverted bottleneck: 1x1 expand, 3x3 depthwise (stride), 1x1 project; shortcut if in == out; ReLU."""
    exp_ch = make_divisible(in_ch * expansion_rate, 8)
    y = _conv_bn(x, exp_ch, 1, (1, 1), f"{name}_exp", True, False, dtype)
    y = _conv_bn(y, exp_ch, 3, stride, f"{name}_dw", True, True, dtype)
    y = _conv_bn(y, out_ch, 1, (1, 1), f"{name}_proj", False, False, dtype)
    if in_ch == out_ch:
        shortcut = x
        if tuple(stride) != (1, 1):
            # torch AvgPool2d(3, stride, padding=1) counts the zero padding: divisor always 9
            shortcut = keras.layers.ZeroPadding2D(1, name=f"{name}_shortcut_pad", dtype=dtype)(x)
            shortcut = keras.layers.AveragePooling2D(
                3, strides=stride, padding="valid", name=f"{name}_shortcut_pool", dtype=dtype
            )(shortcut)
        y = keras.layers.Add(name=f"{name}_add", dtype=dtype)([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu", dtype=dtype)(y)


def build_network(config: Optional[Config] = None, dtype: Optional[str] = None) -> keras.Model:
    """The CP-Mobile network of `config` (log-mel `[B, n_mels, frames, in_channels]` -> logits). `dtype`: a dtype
    or a Keras dtype policy (`mixed_float16`: float32 input and variables, the layers cast to float16)."""
    config = config or Config()
    frames = 1 + config.sample_rate // config.hop_length
    input_dtype = None if dtype and dtype.startswith("mixed_") else dtype
    inputs = keras.Input((config.n_mels, frames, config.in_channels), name="log_mel", dtype=input_dtype)
    base = make_divisible(config.base_channels, 8)
    x = _conv_bn(inputs, base // 4, 3, (2, 2), "in_c0", True, False, dtype)
    x = _conv_bn(x, base, 3, (2, 2), "in_c1", True, False, dtype)
    strides = block_strides(config)
    in_ch, block = base, 0
    for stage, (n, out_ch) in enumerate(zip(config.n_blocks, stage_channels(config)), start=1):
        for _ in range(n):
            block += 1
            stride = strides.get(block, (1, 1))
            x = _block(x, in_ch, out_ch, config.expansion_rate, stride, f"s{stage}_b{block}", dtype)
            in_ch = out_ch
    x = keras.layers.Conv2D(
        config.n_classes, 1, use_bias=False, name="ff_conv", dtype=dtype,
        kernel_initializer=_kaiming_fan_out(config.n_classes, 1),
    )(x)
    x = _batch_norm(x, "ff_bn", dtype)
    logits = keras.layers.GlobalAveragePooling2D(name="ff_pool", dtype=dtype)(x)
    return keras.Model(inputs, logits, name=NETWORK_NAME)


_BLOCK_RE = re.compile(r"^s(\d+)_b(\d+)_(exp|dw|proj)_(conv|bn)$")
_STEM_RE = re.compile(r"^in_c(\d+)_(conv|bn)$")


def upstream_name(layer_name: str) -> Optional[str]:
    """Upstream module path of a weighted network layer (`s1_b3_dw_bn` -> `stages.s1.b3.block.1.1`)."""
    if m := _STEM_RE.match(layer_name):
        return f"in_c.{m[1]}.{0 if m[2] == 'conv' else 1}"
    if m := _BLOCK_RE.match(layer_name):
        return f"stages.s{m[1]}.b{m[2]}.block.{_ROLES.index(m[3])}.{0 if m[4] == 'conv' else 1}"
    if layer_name in ("ff_conv", "ff_bn"):
        return f"feed_forward.{0 if layer_name == 'ff_conv' else 1}"
    return None


def upstream_names(network: keras.Model) -> dict[str, str]:
    """Keras layer name -> upstream module path, for every layer holding weights, in network order."""
    out = {}
    for layer in network.layers:
        if layer.weights:
            path = upstream_name(layer.name)
            if path is None:
                raise ValueError(f"layer {layer.name!r} has weights but no upstream counterpart")
            out[layer.name] = path
    return out

