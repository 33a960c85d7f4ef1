"""The edge front end on a 32-bit numpy (index type int32, as on 32-bit Raspberry Pi OS), run natively: a Debian
bookworm i386 root (Debian's python3 3.11, python3-numpy 1.24, python3-scipy 1.10, no TensorFlow, no LiteRT)
made once by tools/debian_root.py under ~/.cache/asc_tf and entered with chroot (x86-64 runs i386 code as it is).

The same script (resample, numpy log-mel, the manifest's input quantization: what `Classifier` feeds the network)
runs there and here on the synthetic evaluation clips, and the int8 network inputs are compared. Before the fix
the 32-bit side failed in `MelBands` (int64 repeat counts, "Cannot cast array data from dtype('int64') to
dtype('int32')"), reported as "manifest front end unusable".
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from int8_tolerances import INPUT_TIE_FRACTION

REPO = Path(__file__).resolve().parents[1]
N_CLIPS = 8

# Run on both sides with the same sources: argv = work folder holding input.npz and settings.json.
SCRIPT = r'''
import json, platform, struct, sys
from pathlib import Path
import numpy as np, scipy
from asc_tf.data.resample import resample
from asc_tf.edge.frontend import LogMel
from asc_tf.edge.selftest import known_clip
from asc_tf.export.quantization import Quantization

work = Path(sys.argv[1])
settings = json.loads((work / "settings.json").read_text())
frontend = LogMel.from_manifest(settings["frontend"])
quantization = Quantization(settings["scale"], settings["zero_point"])
with np.load(work / "input.npz") as data:
    clips, rate = data["clips"], int(data["rate"])
log_mels = np.stack([frontend(clip) for clip in resample(clips, rate, settings["frontend"]["sample_rate"])])
inputs = quantization.quantize(log_mels)
np.savez(work / f"output-{settings['side']}.npz", log_mels=log_mels, inputs=inputs, known_clip=known_clip(32000, 32000))
print(json.dumps({"numpy": np.__version__, "scipy": scipy.__version__, "python": platform.python_version(),
                  "intp": np.dtype(np.intp).name, "pointer_bits": 8 * struct.calcsize("P"),
                  "index_dtype": frontend.bands.first_bin.dtype.name}))
'''


def _root_tool():
    spec = importlib.util.spec_from_file_location("debian_root", REPO / "tools" / "debian_root.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def i386_root() -> tuple[Path, object]:
    """The cached i386 root (made now when missing: ~3 min). Without root (chroot) this machine cannot run it."""
    if os.geteuid() != 0:
        pytest.skip("the i386 root is entered with chroot, which needs root (CI runs as root)")
    tool = _root_tool()
    try:
        return tool.ensure_root(), tool
    except tool.RootError as error:  # as root, a root that cannot be made is a failure, not a skip
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def evaluation_clips(synthetic_root) -> tuple[np.ndarray, int]:
    """The first synthetic evaluation clips as stored (44.1 kHz, so the resampler runs on both sides too)."""
    from asc_tf.data.synthetic import EVAL_DIR_NAME

    files = sorted((synthetic_root / EVAL_DIR_NAME / "audio").glob("*.wav"), key=lambda p: int(p.stem))[:N_CLIPS]
    clips, rates = zip(*(sf.read(path, dtype="float32") for path in files))
    assert len(files) == N_CLIPS and len(set(rates)) == 1 and len({c.shape for c in clips}) == 1
    return np.stack(clips), rates[0]


def _side(work: Path, settings: dict, side: str, command: list[str], env: dict) -> tuple[dict, dict]:
    (work / "settings.json").write_text(json.dumps({**settings, "side": side}))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{side}: {done.stderr[-3000:]}"
    with np.load(work / f"output-{side}.npz") as data:
        return json.loads(done.stdout.strip().splitlines()[-1]), {key: data[key] for key in data.files}


def test_32bit_numpy_gives_the_same_int8_network_input(i386_root, evaluation_clips, int8_export):
    root, tool = i386_root
    clips, rate = evaluation_clips
    manifest = int8_export.manifest
    settings = {"frontend": manifest["frontend"], "scale": manifest["inputs"]["network"]["scale"],
                "zero_point": manifest["inputs"]["network"]["zero_point"]}
    # the package copied into the root (as onto a Pi): the root stays a clean cache, each run its own folder
    work = Path(tempfile.mkdtemp(dir=root / "tmp", prefix="asc_tf-test-"))
    try:
        shutil.copytree(REPO / "asc_tf", work / "asc_tf", ignore=shutil.ignore_patterns("__pycache__"))
        (work / "script.py").write_text(SCRIPT)
        np.savez(work / "input.npz", clips=clips, rate=rate)
        inside = f"/{work.relative_to(root)}"
        info32, out32 = _side(work, settings, "i386", ["chroot", str(root), "python3", f"{inside}/script.py", inside],
                              {**tool.CHROOT_ENV, "PYTHONPATH": inside})
        host_env = {**os.environ, "PYTHONPATH": str(work), "OPENBLAS_NUM_THREADS": "1"}
        info64, out64 = _side(work, settings, "host", [sys.executable, str(work / "script.py"), str(work)], host_env)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # the two sides are what they claim: Debian's 32-bit numpy/scipy there, this machine's 64-bit ones here
    assert info32["pointer_bits"] == 32 and info32["intp"] == info32["index_dtype"] == "int32", info32
    assert info32["numpy"].startswith("1.24") and info32["scipy"].startswith("1.10"), info32
    assert info64["pointer_bits"] == 64 and info64["index_dtype"] == "int64", info64

    mel32, mel64 = out32["log_mels"], out64["log_mels"]
    assert mel32.dtype == mel64.dtype == np.float32 and mel32.shape == mel64.shape == (N_CLIPS, 256, 65)
    # the float log-mels: float32 arithmetic in other FFT/BLAS builds; docs/edge.md's bounds between two FFTs
    loud = mel64 >= -4.0
    difference = np.abs(mel32.astype(np.float64) - mel64)
    assert difference[loud].max() <= 1e-4 and difference.max() <= 1e-3, (difference[loud].max(), difference.max())

    # the selftest's known clip (uint32 hash noise and tones) is the same bit for bit on both
    np.testing.assert_array_equal(out32["known_clip"], out64["known_clip"])

    q32, q64 = out32["inputs"].astype(np.int32), out64["inputs"].astype(np.int32)
    assert q32.shape == q64.shape == (N_CLIPS, 256, 65)
    steps = np.abs(q32 - q64)
    # an input differs only where the two log-mels straddle a rounding boundary (a half step of the scale):
    # none where they are equal, never by more than one step, and (boundaries being `scale` apart, the log-mels
    # within ~1e-5 of each other) on a tiny fraction: a real 32-bit regression moves far more
    scale = settings["scale"]
    assert not steps[mel32 == mel64].any()
    assert steps.max() <= 1, steps.max()
    assert (steps != 0).mean() <= INPUT_TIE_FRACTION, (steps != 0).sum()
    low, high = np.minimum(mel32, mel64).astype(np.float64) / scale, np.maximum(mel32, mel64).astype(np.float64) / scale
    straddles = np.floor(high - 0.5) + 0.5 >= low  # a half-integer (a rounding boundary) within [low, high]
    assert np.all(straddles[steps != 0])
