"""Resource faults of writes (full disk, file-size limit, folder not writable, read-only file system) as one
user-facing line, and a deterministic kill hook for tests; imports nothing heavy (see asc_tf/errors.py)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path

_FAULTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file larger than the size limit allows",
    errno.EACCES: "folder not writable",
    errno.EPERM: "folder not writable",
    errno.EROFS: "read-only file system",
}
KILL_ENV = "ASC_TF_FAULT_KILL_AT"
"""`WRITER:N` (e.g. `info.json:2`): the N-th atomic write of a file named WRITER SIGKILLs the process just before
its rename (tests use it to show a killed write leaves the old file or the new one, never a torn one)."""
_kill_counts: dict[str, int] = {}


class ResourceError(ValueError):
    """A write failed for lack of room or rights; the message names the file, the free space and what to do."""


def free_mib(path: str | Path) -> float | None:
    """Free MiB on the file system holding `path` (its nearest existing ancestor); None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free / 2**20
    except OSError:
        return None


def resource_error(error: OSError, path: str | Path | None = None, needed_bytes: int | None = None
                   ) -> ResourceError | None:
    """The one-line ResourceError for a write's OSError, or None when it is not a resource fault."""
    reason = _FAULTS.get(error.errno)
    if reason is None:
        return None
    where = Path(path or error.filename or ".")
    free = free_mib(where)
    figures = []
    if free is not None:
        figures.append(f"{free:.0f} MiB free")
    if needed_bytes:
        figures.append(f"about {needed_bytes / 2**20:.0f} MiB needed")
    detail = f" ({', '.join(figures)})" if figures and error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    advice = {errno.EFBIG: "raise the file-size limit (ulimit -f) or pass --out (--project_dir) elsewhere",
              errno.EACCES: "make the folder writable or pass --out (--project_dir) elsewhere",
              errno.EPERM: "make the folder writable or pass --out (--project_dir) elsewhere",
              errno.EROFS: "pass --out (or --project_dir) on a writable file system"}.get(
        error.errno, "free space or pass --out (--project_dir) elsewhere")
    return ResourceError(f"{where}: {reason}{detail}: {advice}")


def check_free_space(folder: str | Path, needed_bytes: int) -> None:
    """Refuse before a long write that cannot fit (conversion, export, checkpoint): ResourceError naming both."""
    free = free_mib(folder)
    if free is not None and free * 2**20 < needed_bytes:
        raise ResourceError(f"{folder}: no space left on the device ({free:.0f} MiB free, about "
                            f"{needed_bytes / 2**20:.0f} MiB needed): free space or pass --out (--project_dir) elsewhere")


def maybe_kill(path: str | Path) -> None:
    """The kill hook (KILL_ENV): SIGKILL this process at the chosen write of the file named like `path`."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    name, _, count = spec.rpartition(":")
    if Path(path).name != name:
        return
    _kill_counts[name] = _kill_counts.get(name, 0) + 1
    if _kill_counts[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
