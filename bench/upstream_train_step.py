"""Upstream's training step in PyTorch, timed for `bench/train_step.py` (which starts this file in the torch venv
and asks it for steps over stdin, so both frameworks are timed in turns under the same load).

The step is `PLModule.training_step` (shared/spec/upstream.md 3-5): Resample 44.1 -> 32 kHz, MelSpectrogram,
FrequencyMasking(48) on the power, log(x + 1e-5), Freq-MixStyle (p 0.4, alpha 0.3), the CP-Mobile network,
cross-entropy, backward, torch.optim.AdamW (lr 0.005, wd 1e-4) and the LambdaLR warm-up/cosine step.
torchaudio's Resample, MelSpectrogram and FrequencyMasking are written as the torch ops they run, with upstream's own
kernel, window and filterbank from shared/golden (checked against its `mel_log` at start): torchaudio 2.9's
compiled extension does not load beside the CPU build of torch that this machine has (2.13.0).

    python -m venv venv-torch && venv-torch/bin/pip install -r bench/requirements-torch.txt
    venv-torch/bin/python bench/upstream_train_step.py --golden ../shared/golden/upstream_golden.npz  # then "N" lines
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.upstream_torch import Network  # noqa: E402


class FrontEnd(torch.nn.Module):
    """torchaudio's Resample (polyphase conv1d) + MelSpectrogram (centred reflect-padded STFT, power, HTK filterbank)
    + FrequencyMasking(48, iid) on the power + log(x + 1e-5), as upstream's `mel_forward` in training."""

    def __init__(self, golden: np.lib.npyio.NpzFile) -> None:
        super().__init__()
        self.register_buffer("kernel", torch.from_numpy(golden["mel.0.kernel"]))  # [320, 1, 459]
        self.register_buffer("window", torch.from_numpy(golden["mel.1.spectrogram.window"]))  # [3072]
        self.register_buffer("fb", torch.from_numpy(golden["mel.1.mel_scale.fb"]))  # [2049, 256]

    def mel_power(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        wave = F.pad(x.reshape(batch, 1, -1), (9, 9 + 441))
        wave = F.conv1d(wave, self.kernel, stride=441).transpose(1, 2).reshape(batch, -1)[:, :32000]
        spec = torch.stft(wave, n_fft=4096, hop_length=500, win_length=3072, window=self.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True).abs().pow(2.0)
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2).unsqueeze(1)  # [B, 1, 256, 65]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = self.mel_power(x)
        if self.training:  # torchaudio.functional.mask_along_axis_iid(mel, 48, 0.0, axis=2)
            value = torch.rand(mel.shape[:2]) * 48
            start = torch.rand(mel.shape[:2]) * (mel.shape[2] - value)
            bins = torch.arange(mel.shape[2], dtype=torch.float32)
            start, end = start.floor()[..., None, None], (start.floor() + value.floor())[..., None, None]
            mask = (bins[None, None, :, None] >= start) & (bins[None, None, :, None] < end)
            mel = mel.masked_fill(mask, 0.0)
        return (mel + 1e-5).log()


def mixstyle(x: torch.Tensor, p: float = 0.4, alpha: float = 0.3, eps: float = 1e-6) -> torch.Tensor:
    """helpers/utils.py::mixstyle, verbatim in its arithmetic."""
    if np.random.rand() > p:
        return x
    batch = x.size(0)
    f_mu = x.mean(dim=[1, 3], keepdim=True)
    f_sig = (x.var(dim=[1, 3], keepdim=True) + eps).sqrt()
    f_mu, f_sig = f_mu.detach(), f_sig.detach()
    x_normed = (x - f_mu) / f_sig
    lmda = torch.distributions.Beta(alpha, alpha).sample((batch, 1, 1, 1)).to(x.device)
    perm = torch.randperm(batch).to(x.device)
    mu_mix = f_mu * lmda + f_mu[perm] * (1 - lmda)
    sig_mix = f_sig * lmda + f_sig[perm] * (1 - lmda)
    return x_normed * sig_mix + mu_mix


def warmup_cosine(total: int, warmup: int = 2000):
    return lambda k: k / warmup if k < warmup else max(0.0, 0.5 * (1 + math.cos(math.pi * (k - warmup) / (total - warmup))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--golden", type=Path, required=True)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    np.random.seed(0)
    golden = np.load(args.golden)
    front_end = FrontEnd(golden).to(args.device)
    with torch.no_grad():
        mel = front_end.eval()(torch.from_numpy(golden["waveform_44k"]).to(args.device)).cpu().numpy()
    error = float(np.abs(mel - golden["mel_log"]).max())
    if error > 1e-3:
        raise SystemExit(f"{args.golden}: this front end is {error:.2e} from upstream's mel_log; fix it before timing")
    front_end.train()
    network = Network().to(args.device).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=0.005, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(81900))
    rng = np.random.default_rng(0)
    waves = torch.from_numpy((rng.normal(size=(args.batch_size, 1, 44100)) * 0.03).astype(np.float32)).to(args.device)
    labels = torch.from_numpy(rng.integers(0, 10, args.batch_size)).to(args.device)

    def step() -> float:
        start = time.perf_counter()
        x = mixstyle(front_end(waves))
        loss = F.cross_entropy(network(x), labels, reduction="none").mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if args.device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step()  # warm up
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "mel_log_error": error}), flush=True)
    for line in sys.stdin:
        print(json.dumps([step() for _ in range(int(line))]), flush=True)


if __name__ == "__main__":
    main()
