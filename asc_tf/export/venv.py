"""Cached virtual environments for tools that cannot be installed beside TensorFlow (the metadata writer, MediaPipe):
one per requirements file and content, under ~/.cache/asc_tf, made once by `asc_tf.io.build_once`, so concurrent
exports or tests wait for one install and never use a half-made one."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from asc_tf.io import build_once

log = logging.getLogger(__name__)


class VenvError(RuntimeError):
    """A venv that cannot be made here (no index reachable, no wheel); the message says which file and why."""


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asc_tf"


def cached_venv(requirements: Path, name: str, timeout: float = 1800) -> Path:
    """The python of a venv with `requirements` installed (`pip install -r`), made on first use (`build_once`: whole,
    in a staging folder under a lock, renamed into place; the venv's python finds its pyvenv.cfg beside itself, so it
    works from there, and everything runs as `python -m`)."""
    requirements = Path(requirements)
    try:
        digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    except OSError as error:
        raise VenvError(f"{requirements}: {error.strerror}") from None

    def make(stage: Path) -> None:
        log.info("making the %s venv from %s (once) under %s", name, requirements.name, cache_dir())
        subprocess.run([sys.executable, "-m", "venv", str(stage)], check=True, capture_output=True, timeout=300)
        done = subprocess.run([str(stage / "bin" / "python"), "-m", "pip", "install", "-q",
                               "--disable-pip-version-check", "-r", str(requirements)],
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise VenvError(f"pip install -r {requirements.name} failed: {reason}")

    try:
        return build_once(cache_dir() / f"venv-{name}-{digest}", make) / "bin" / "python"
    except (OSError, subprocess.SubprocessError) as error:
        raise VenvError(f"the {name} venv could not be made from {requirements.name}: {error}") from None
