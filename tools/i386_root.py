"""A Debian bookworm i386 root with Debian's python3-numpy and python3-scipy, for running the edge front end on a
32-bit numpy (index type int32, as on 32-bit Raspberry Pi OS) natively on an x86-64 machine, without emulation.

    python tools/i386_root.py            # make it when missing (minutes, once); quiet
    python tools/i386_root.py --print    # also print its path

Why a root and not multiarch packages: i386 python3-numpy cannot be installed beside the machine's own python3.
The root lives outside the clone ($ASC_TF_I386_ROOT, default ~/.cache/asc_tf/debian-i386-bookworm), is built by
`debootstrap --arch=i386` in a temporary folder beside it and renamed into place only when complete and checked,
under a file lock, so concurrent runs (CI, pytest) wait for one build and never see a half-made root.
Needs root (debootstrap, chroot) and Debian's mirror. Exit 0 ready, 2 cannot be made (one line saying why).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional

SUITE = "bookworm"
ARCH = "i386"
PACKAGES = ("python3", "python3-numpy", "python3-scipy")
ROOT_ENV = "ASC_TF_I386_ROOT"
MARKER = ".asc_tf_root.json"  # written last, inside the root: what was installed, and that it is complete
# what a chroot'ed command sees: nothing of this machine's Python environment
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
              "HOME": "/root", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
PROBE = ("import json, platform, struct, sys, numpy, scipy; print(json.dumps({'python': platform.python_version(), "
         "'numpy': numpy.__version__, 'scipy': scipy.__version__, 'pointer_bits': 8 * struct.calcsize('P'), "
         "'intp': numpy.dtype(numpy.intp).name}))")


class RootError(RuntimeError):
    """The root cannot be made here; the message says why and what to do."""


def default_root() -> Path:
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "asc_tf" / f"debian-{ARCH}-{SUITE}"


def describe(root: Path) -> Optional[dict]:
    """The marker of a complete root (python, numpy, scipy versions), else None."""
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def run_in_root(root: Path, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`argv` run inside the root (chroot), with a clean environment; output captured as text."""
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, env=CHROOT_ENV,
                          timeout=timeout)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if this process is killed
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _problem() -> Optional[str]:
    if os.geteuid() != 0:
        return "debootstrap and chroot need root"
    for tool in ("debootstrap", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install debootstrap"
    return None


def ensure_root(root: Optional[Path] = None) -> Path:
    """The complete root at `root` (default `default_root()`), made first when missing. Raises RootError."""
    root = Path(root) if root is not None else default_root()
    if describe(root) is not None:
        return root
    problem = _problem()
    if problem:
        raise RootError(f"cannot make the {ARCH} root at {root}: {problem}")
    with _locked(root.with_name(root.name + ".lock")):
        if describe(root) is not None:  # another process made it while this one waited
            return root
        for stale in root.parent.glob(f"{root.name}.build-*"):  # left by a killed build (the lock is ours now)
            shutil.rmtree(stale, ignore_errors=True)
        if root.exists():  # no marker: incomplete, never used
            shutil.rmtree(root)
        stage = Path(tempfile.mkdtemp(dir=root.parent, prefix=f"{root.name}.build-"))
        try:
            _build(stage, root.with_name(root.name + ".log"))
            stage.chmod(0o755)
            stage.rename(root)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return root


def _build(stage: Path, log_path: Path) -> None:
    command = ["debootstrap", "--arch", ARCH, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
               str(stage)]
    with open(log_path, "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=3600)
    if done.returncode != 0:
        last = (log_path.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise RootError(f"debootstrap failed ({last}); full log: {log_path}")
    for package in (stage / "var" / "cache" / "apt" / "archives").glob("*.deb"):  # 100s of MB, never used again
        package.unlink()
    probe = run_in_root(stage, ["python3", "-c", PROBE])
    if probe.returncode != 0:
        raise RootError(f"the new {ARCH} root's python3 cannot import numpy/scipy: {probe.stderr.strip()[-300:]}")
    versions = json.loads(probe.stdout)
    if versions["pointer_bits"] != 32 or versions["intp"] != "int32":
        raise RootError(f"the new root's python is not 32-bit ({versions}): is {ARCH} supported by this kernel?")
    (stage / MARKER).write_text(json.dumps({"suite": SUITE, "arch": ARCH, "packages": list(PACKAGES), **versions})
                                + "\n")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help=f"where (default: ${ROOT_ENV} or {default_root()})")
    parser.add_argument("--print", action="store_true", help="print the root's path and versions")
    args = parser.parse_args(argv)
    try:
        root = ensure_root(args.root)
    except (RootError, OSError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.print:
        print(root, json.dumps(describe(root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
