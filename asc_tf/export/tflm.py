"""The int8 network under TensorFlow Lite Micro's interpreter (`tflite-micro`, optional): its outputs compared
with LiteRT's and the smallest tensor arena that runs it.

Only dev builds of tflite-micro are published, so the import is guarded: `available()` says whether it
is installed, and callers skip with `unavailable_reason()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from typing import Iterator, Optional

import numpy as np

log = logging.getLogger(__name__)

try:
    from tflite_micro import runtime as _tflm_runtime
except ImportError:  # optional dependency
    _tflm_runtime = None

# The one install command for the optional package, the build the project was tested with (requirements.txt
# and docs/export.md give the same line; tests/test_docs.py checks that they agree).
INSTALL_COMMAND = "pip install tflite-micro==0.dev20261023182759"

ARENA_ALIGNMENT = 16


def available() -> bool:
    return _tflm_runtime is not None


def unavailable_reason() -> str:
    return f"tflite-micro is not installed (only dev builds exist; the tested one: {INSTALL_COMMAND})"


def version() -> Optional[str]:
    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture C-level stderr (file descriptor 2), where TFLM prints allocation failures and allocations."""
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode("utf-8", "replace"))


def _interpreter(model: bytes, arena_size: int):
    if _tflm_runtime is None:
        raise RuntimeError(unavailable_reason())
    return _tflm_runtime.Interpreter.from_bytes(model, arena_size=arena_size)


def runs_with_arena(model: bytes, arena_size: int, example: np.ndarray) -> bool:
    """Whether TFLM allocates and invokes the model in an arena of `arena_size` bytes."""
    try:
        with captured_stderr():
            interpreter = _interpreter(model, arena_size)
            interpreter.set_input(example, 0)
            interpreter.invoke()
        return True
    except RuntimeError:
        return False


def smallest_arena(model: bytes, example: np.ndarray, upper: Optional[int] = None) -> int:
    """The smallest arena (a multiple of 16 bytes) that runs the model, by bisection."""
    high = upper or max(64 * 1024, 20 * len(model))
    while not runs_with_arena(model, high, example):
        high *= 2
        if high > 1 << 30:
            raise RuntimeError("TFLM could not run the model in any arena up to 1 GiB")
    low = 0  # invariant: `low` fails (or is 0), `high` works
    while high - low > ARENA_ALIGNMENT:
        mid = (low + high) // 2 // ARENA_ALIGNMENT * ARENA_ALIGNMENT
        if mid <= low:
            break
        if runs_with_arena(model, mid, example):
            high = mid
        else:
            low = mid
    return high


def run(model: bytes, inputs: list[np.ndarray], arena_size: int) -> list[np.ndarray]:
    """Raw outputs of the int8 network for int8 inputs under TFLM (one interpreter, reset between clips)."""
    with captured_stderr():
        interpreter = _interpreter(model, arena_size)
    outputs = []
    for x in inputs:
        interpreter.set_input(np.asarray(x, dtype=np.int8), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0), copy=True))
        interpreter.reset()
    return outputs


@dataclass
class TFLMReport:
    """TFLM against LiteRT on a few clips."""

    version: Optional[str]
    arena_bytes: int
    clips: int
    max_abs_diff_steps: int  # largest output difference in quantization steps
    argmax_agreement: float

    def to_dict(self) -> dict:
        return {"version": self.version, "arena_bytes": self.arena_bytes, "clips": self.clips,
                "max_abs_diff_steps": self.max_abs_diff_steps, "argmax_agreement": self.argmax_agreement}


def compare_with_litert(model: bytes, inputs: list[np.ndarray], litert_outputs: list[np.ndarray]) -> TFLMReport:
    """Run the int8 network under TFLM in its smallest arena and compare with LiteRT's raw int8 outputs."""
    arena = smallest_arena(model, inputs[0])
    outputs = run(model, inputs, arena)
    diffs = [int(np.max(np.abs(a.astype(np.int32) - np.asarray(b).astype(np.int32))))
             for a, b in zip(outputs, litert_outputs)]
    agree = float(np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(outputs, litert_outputs)]))
    log.info("TFLM: arena %d bytes, %d clips, max diff %d steps", arena, len(inputs), max(diffs))
    return TFLMReport(version(), arena, len(inputs), max(diffs), agree)
