"""Atomic file writes: a temporary file in the target's folder, then a rename, so a reader (or a
resumed job) never sees a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from asc_tf import storage

log = logging.getLogger(__name__)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


# `.NAME.PID.XXXXXXXX.tmp` (files and staging folders written here), `.NAME.PID.tmp.keras` (checkpoints):
# the writer's pid tells a later run whether the owner is gone (killed) and the temporary can be removed.
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)\.(?:[A-Za-z0-9_]+\.)?tmp(?:\.keras)?$")


def temporary_prefix(path: str | Path) -> str:
    """Name prefix of this process's temporaries for `path` (see `remove_stale_temporaries`)."""
    return f".{Path(path).name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files and staging folders that killed processes left in `folder` (their pid in
    the name is no longer running); returns what was removed. Temporaries of live processes are kept."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for item in folder.iterdir():
        match = _TEMPORARY.match(item.name)
        if match is None or _alive(int(match["pid"])):
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        removed.append(item)
    return removed


def staging_dir(target: str | Path) -> Path:
    """A new empty folder beside `target` (to be renamed onto it when complete), with the permissions of a
    normal folder (mkdtemp makes 0700); stale staging folders of killed runs are removed first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=temporary_prefix(target), suffix=".tmp"))
    os.chmod(stage, 0o777 & ~_UMASK)
    return stage


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str = "") -> Iterator[None]:
    """Hold an exclusive advisory lock on the file `path` (made if absent) for the block; another process asking
    for it waits. The kernel releases it when its holder exits or is killed, so a crash never leaves it held."""
    import fcntl  # POSIX only, as are the platforms the project runs on (Linux, a Pi, macOS)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process making %s", what or path)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def lock_path(target: str | Path) -> Path:
    """The lock file that guards the making of `target` (hidden, beside it; kept: an empty file)."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def build_once(target: str | Path, make: Callable[[Path], None]) -> Path:
    """Make the folder `target` once, safely shared by concurrent and interrupted callers: under a lock beside it,
    `make(staging)` fills a new staging folder, renamed onto `target` only when complete. A concurrent caller
    waits and reuses the result; a killed one leaves only its staging folder, removed by the next call."""
    target = Path(target)
    if target.exists():
        return target
    with exclusive_lock(lock_path(target), str(target)):
        if target.exists():  # made by the caller we waited for
            return target
        stage = staging_dir(target)
        try:
            make(stage)
            os.rename(stage, target)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return target


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    except OSError as error:
        translated = storage.resource_error(error, path.parent)
        if translated is None:
            raise
        raise translated from error
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        storage.maybe_kill(path)  # tests' SIGKILL just before the rename (ASC_TF_FAULT_KILL_AT)
        os.replace(tmp_path, path)
    except OSError as error:
        translated = storage.resource_error(error, path)
        if translated is None:
            raise
        raise translated from error
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (shards and models can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
