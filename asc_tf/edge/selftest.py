"""`python -m asc_tf.edge --selftest BUNDLE`: on the device, after copying a bundle, check that what runs here is what
was exported: the interpreter loads, the CPU features it may use (from /proc/cpuinfo), every model file against the
manifest's size and sha256, and the output on a known clip against the value the export recorded in the manifest.

A wrong result with exit code 0 is what this catches: under qemu-user's default `max` CPU model the int8 network
classified every clip as the same scene with no error at all. The known clip is computed, not stored: integer noise
(a 32-bit hash of the sample index, exact on every platform) plus two tones.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from asc_tf.edge.errors import EdgeError

# CPU features XNNPACK (LiteRT's CPU kernels) selects code paths with, as /proc/cpuinfo names them
RELEVANT_FEATURES = ("sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avxvnni",  # x86
                     "neon", "vfpv4", "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "fphp")  # Arm
# int8: input ties (two float32 front ends quantize a value on a rounding tie one step apart) move the logits by up to
# 2 steps, LiteRT's kernels against other builds (tflite-runtime's XNNPACK, reference kernels) by up to 4: the bounds
# of tests/int8_tolerances.py (INPUT_LOGIT_STEPS + KERNEL_LOGIT_STEPS). A wrong kernel or CPU path moves tens of steps.
INT8_STEPS = 6
FLOAT_TOLERANCE = 1e-3  # logits of the fp16 network (float32 arithmetic): differences seen are ~1e-6


def known_clip(samples: int, sample_rate: int) -> np.ndarray:
    """The selftest's clip `[samples]` float32: a 32-bit integer hash of the index as noise (uint32 arithmetic wraps
    identically everywhere), and tones at 440 Hz and 3 kHz."""
    x = np.arange(samples, dtype=np.uint32)
    for shift, factor in ((16, 0x7FEB352D), (15, 0x846CA68B)):  # a well-mixing 32-bit integer hash (lowbias32)
        x ^= x >> np.uint32(shift)
        x *= np.uint32(factor)
    x ^= x >> np.uint32(16)
    noise = x.astype(np.float64) / 2.0 ** 32 - 0.5
    t = np.arange(samples, dtype=np.float64) / sample_rate
    tones = 0.1 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * np.sin(2 * np.pi * 3000.0 * t)
    return (0.2 * noise + tones).astype(np.float32)


def tolerance(manifest: dict[str, Any]) -> float:
    """How far the known clip's logits may be from the recorded ones on another machine (logit units)."""
    scale = manifest["outputs"]["network"].get("scale")
    return INT8_STEPS * float(scale) if scale is not None else FLOAT_TOLERANCE


def record(classifier: Any) -> dict[str, Any]:
    """The manifest's `selftest` section: the known clip's logits and class as the edge runtime computes them."""
    logits = classifier.logits(known_clip(classifier.clip_samples, classifier.sample_rate))
    return {"clip": "asc_tf.edge.selftest.known_clip", "logits": [float(v) for v in logits],
            "class": classifier.classes[int(np.argmax(logits))], "tolerance": tolerance(classifier.manifest)}


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, Optional[list[str]]]:
    """The machine (`uname -m`) and the XNNPACK-relevant features of the first CPU in /proc/cpuinfo (None: no
    /proc/cpuinfo, e.g. in a chroot without /proc)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.machine(), None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            present = set(value.split())
            return platform.machine(), [feature for feature in RELEVANT_FEATURES if feature in present]
    return platform.machine(), []


@dataclass
class Report:
    """What the selftest found: `problem` None when everything checked out."""

    summary: str
    problem: Optional[str] = None


def run(bundle_dir: str | Path, num_threads: Optional[int] = 1) -> Report:
    """Run every check; the first that fails is the report's `problem`."""
    from asc_tf.edge.bundle import MANIFEST, read_manifest

    path = Path(bundle_dir)
    try:
        from asc_tf.export.interpreter import describe
    except ImportError as error:
        return Report("", f"no TFLite interpreter: {error}")
    machine, features = cpu_features()
    listed = "no /proc/cpuinfo" if features is None else " ".join(features) or "none of the listed features"
    where = f"{describe()}, numpy {np.__version__}, {machine} ({listed})"
    try:
        manifest = read_manifest(path, roles=())
        roles = tuple(role for role, entry in manifest["files"].items() if isinstance(entry, dict))
        read_manifest(path, roles=roles)  # every model file against its size and sha256
        from asc_tf.edge.classifier import Classifier

        classifier = Classifier(path, num_threads=num_threads)
    except EdgeError as error:
        return Report(where, str(error))
    expected = manifest.get("selftest")
    if not isinstance(expected, dict) or "logits" not in expected:
        return Report(where, f"{path / MANIFEST} records no known-clip output (exported before the selftest): "
                             "export again")
    logits = classifier.logits(known_clip(classifier.clip_samples, classifier.sample_rate))
    recorded = np.asarray(expected["logits"], np.float64)
    difference = float(np.max(np.abs(logits - recorded)))
    best = classifier.classes[int(np.argmax(logits))]
    allowed = float(expected.get("tolerance", tolerance(manifest)))
    if best != expected["class"] or not difference <= allowed:
        return Report(where, f"the known clip gives {best} (logits {difference:.3g} from the export's, at most "
                             f"{allowed:.3g} allowed), the export recorded {expected['class']}: this machine "
                             f"computes something else ({where}); try another interpreter build or CPU setting")
    return Report(f"{where}; {len(roles)} files match {MANIFEST}; known clip: {best}, logits within "
                  f"{difference:.2g} of the export's (allowed {allowed:.2g})")
