"""Cached virtual environments for tools that cannot be installed beside TensorFlow (the metadata writer, MediaPipe):
one per requirements file and content, under ~/.cache/asc_tf, made once in a staging folder and renamed into place
when complete, under a file lock, so concurrent exports or tests wait for one install and never use a half-made one."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


class VenvError(RuntimeError):
    """A venv that cannot be made here (no index reachable, no wheel); the message says which file and why."""


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asc_tf"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on `path` (created), released on exit or when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_venv(requirements: Path, name: str, timeout: float = 1800) -> Path:
    """The python of a venv with `requirements` installed (`pip install -r`), made on first use."""
    requirements = Path(requirements)
    try:
        digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    except OSError as error:
        raise VenvError(f"{requirements}: {error.strerror}") from None
    home = cache_dir() / f"venv-{name}-{digest}"
    python = home / "bin" / "python"
    if python.exists():
        return python
    with file_lock(home.with_name(home.name + ".lock")):
        if python.exists():  # made by another process while this one waited
            return python
        for stale in home.parent.glob(f"{home.name}.build-*"):  # left by a killed install (the lock is ours)
            shutil.rmtree(stale, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(dir=home.parent, prefix=f"{home.name}.build-"))
        try:
            log.info("making the %s venv from %s (once) in %s", name, requirements.name, home)
            # renamed when complete: the venv's python finds its pyvenv.cfg beside itself, so it works from its new
            # place (only the entry scripts in bin/ keep the staging path; everything runs as `python -m`)
            subprocess.run([sys.executable, "-m", "venv", str(stage)], check=True, capture_output=True, timeout=300)
            done = subprocess.run([str(stage / "bin" / "python"), "-m", "pip", "install", "-q",
                                   "--disable-pip-version-check", "-r", str(requirements)],
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise VenvError(f"pip install -r {requirements.name} failed: {reason}")
            stage.chmod(0o755)
            stage.rename(home)
        except (OSError, subprocess.SubprocessError) as error:
            raise VenvError(f"the {name} venv could not be made from {requirements.name}: {error}") from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return python
