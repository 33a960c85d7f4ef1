"""Upstream's inference path in PyTorch eager, written from `shared/spec/upstream.md` for timing: `mel_forward`
(torchaudio Resample 44.1 -> 32 kHz, MelSpectrogram, log(x + 1e-5)) and the CP-Mobile network (61,148
parameters, upstream's initialisation; timing does not depend on the weights' values).

Optional: needs torch and torchaudio (`pip install torch==2.9.1 'torchaudio==2.9.*'`, not in requirements.txt).
`Conv2dNormActivation` is torchvision's (Conv2d without bias, BatchNorm2d, ReLU), written out to spare torchvision.
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_norm_act(c_in: int, c_out: int, kernel: int, stride=1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (padding (k-1)//2, no bias), BatchNorm2d, ReLU (or none)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU()) if act else nn.Sequential(*layers)


class Block(nn.Module):
    """Inverted bottleneck: 1x1 expand, 3x3 depthwise (stride), 1x1 project; shortcut if widths match; ReLU."""

    def __init__(self, c_in: int, c_out: int, expansion_rate: float, stride) -> None:
        super().__init__()
        exp = make_divisible(c_in * expansion_rate)
        self.block = nn.Sequential(conv_norm_act(c_in, exp, 1), conv_norm_act(exp, exp, 3, stride, groups=exp),
                                   conv_norm_act(exp, c_out, 1, act=False))
        self.use_shortcut = c_in == c_out
        if self.use_shortcut:
            self.shortcut = nn.Sequential() if stride in (1, (1, 1)) else \
                nn.Sequential(nn.AvgPool2d(kernel_size=3, stride=stride, padding=1), nn.Sequential())
        self.after_block_activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.use_shortcut:
            y = y + self.shortcut(x)
        return self.after_block_activation(y)


class Network(nn.Module):
    """`models/baseline.py::get_model` with the CLI's values (base 32, multiplier 1.8, expansion 2.1, blocks 3/2/1)."""

    def __init__(self, n_classes: int = 10, base_channels: int = 32, channels_multiplier: float = 1.8,
                 expansion_rate: float = 2.1, n_blocks=(3, 2, 1), strides=None) -> None:
        super().__init__()
        strides = strides or {"b2": (1, 1), "b3": (1, 2), "b4": (2, 1)}
        base = make_divisible(base_channels)
        widths = [base] + [make_divisible(base * channels_multiplier ** s) for s in range(len(n_blocks))]
        self.in_c = nn.Sequential(conv_norm_act(1, widths[0] // 4, 3, 2),
                                  conv_norm_act(widths[0] // 4, widths[0], 3, 2))
        self.stages = nn.Sequential()
        count = 0
        for stage, blocks in enumerate(n_blocks):
            module = nn.Sequential()
            c_in = widths[stage]
            for _ in range(blocks):
                count += 1
                name = f"b{count}"
                module.add_module(name, Block(c_in, widths[stage + 1], expansion_rate, strides.get(name, (1, 1))))
                c_in = widths[stage + 1]
            self.stages.add_module(f"s{stage + 1}", module)
        self.feed_forward = nn.Sequential(nn.Conv2d(widths[-1], n_classes, 1, bias=False), nn.BatchNorm2d(n_classes),
                                          nn.AdaptiveAvgPool2d((1, 1)))
        self.apply(_initialize_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.stages(self.in_c(x))).squeeze(2).squeeze(2)


def _initialize_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class Upstream(nn.Module):
    """`PLModule` in evaluation: `mel_forward` (no masking) then the network; logits `[B, 10]`."""

    def __init__(self) -> None:
        import torchaudio  # only here: the network alone needs no torchaudio (bench/upstream_train_step.py)

        super().__init__()
        self.mel = nn.Sequential(
            torchaudio.transforms.Resample(orig_freq=44100, new_freq=32000),
            torchaudio.transforms.MelSpectrogram(sample_rate=32000, n_fft=4096, win_length=3072, hop_length=500,
                                                 n_mels=256, f_min=0, f_max=None))
        self.model = Network()

    def mel_forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.mel(x) + 1e-5).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform `[B, 1, 44100]` at 44.1 kHz -> logits `[B, 10]`."""
        return self.model(self.mel_forward(x))
