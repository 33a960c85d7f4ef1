"""Debian bookworm roots with Debian's own python3-numpy and python3-scipy, for running the edge runtime as on a
32-bit Raspberry Pi OS (also Debian bookworm):

    python tools/debian_root.py                 # i386: a 32-bit numpy (index type int32) run natively on x86-64
    python tools/debian_root.py --arch armhf    # 32-bit Arm under qemu-user (tools/pi_emulation.sh; QEMU_CPU)
    python tools/debian_root.py --arch arm64    # 64-bit Arm under qemu-user (tools/pi_emulation.sh)
    python tools/debian_root.py --print         # also print its path and versions

Why a root and not multiarch packages: i386 python3-numpy cannot be installed beside the machine's own python3.
A root lives outside the clone ($ASC_TF_<ARCH>_ROOT, default ~/.cache/asc_tf/debian-<arch>-bookworm), is built by
`debootstrap --arch=<arch>` in a temporary folder beside it and renamed into place only when complete and checked,
under a file lock, so concurrent runs (CI, pytest) wait for one build and never see a half-made root. Made once
(minutes; armhf much longer, emulated), quiet. Needs root (debootstrap, chroot), Debian's mirror, and for armhf
qemu-user-static with binfmt_misc. Exit 0 ready, 2 cannot be made (one line saying why).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # asc_tf.io: standard library only, no install needed
from asc_tf.io import build_once  # noqa: E402

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-numpy", "python3-scipy")
# armhf: what docs/edge.md's 32-bit install uses from Debian (a --system-site-packages venv; pip reaches PyPI);
# python3-ply named because debootstrap does not resolve python3-pycparser's virtual python3-ply-lex-3.10
PACKAGES = {"i386": BASE_PACKAGES,
            "armhf": (*BASE_PACKAGES, "python3-cffi", "python3-ply", "python3-venv", "python3-pip", "libsndfile1",
                      "ca-certificates"),
            "arm64": (*BASE_PACKAGES, "python3-venv", "python3-pip", "ca-certificates")}  # wheels from PyPI there
POINTER_BITS = {"i386": 32, "armhf": 32, "arm64": 64}
# qemu-arm (32-bit user mode) has no Cortex-A72/A53 model (they are qemu-aarch64's); Cortex-A15 is its ARMv7-A core with
# NEON and VFPv4, what 32-bit Raspberry Pi OS's armhf code uses on a Pi's core in AArch32 (qemu's default `max` adds
# every ARMv8 AArch32 feature)
EMULATED_CPU = {"armhf": "cortex-a15", "arm64": "cortex-a72"}  # arm64: a Pi 4's core
MARKER = ".asc_tf_root.json"  # written last, inside the root: what was installed
# what a chroot'ed command sees: nothing of this machine's Python environment
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
              "HOME": "/root", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
PROBE = ("import json, platform, struct, sys, numpy, scipy; print(json.dumps({'python': platform.python_version(), "
         "'numpy': numpy.__version__, 'scipy': scipy.__version__, 'pointer_bits': 8 * struct.calcsize('P'), "
         "'intp': numpy.dtype(numpy.intp).name}))")


class RootError(RuntimeError):
    """The root cannot be made here; the message says why and what to do."""


def default_root(arch: str = "i386") -> Path:
    variable = f"ASC_TF_{arch.upper()}_ROOT"
    if os.environ.get(variable):
        return Path(os.environ[variable])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "asc_tf" / f"debian-{arch}-{SUITE}"


def describe(root: Path) -> Optional[dict]:
    """The marker of a root (python, numpy, scipy versions), else None."""
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def run_in_root(root: Path, argv: list[str], timeout: float = 600, cpu: Optional[str] = None
                ) -> subprocess.CompletedProcess:
    """`argv` run inside the root (chroot), with a clean environment (`cpu`: QEMU_CPU for an emulated root)."""
    env = {**CHROOT_ENV, **({"QEMU_CPU": cpu} if cpu else {})}
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, env=env, timeout=timeout)


def _problem(arch: str) -> Optional[str]:
    if os.geteuid() != 0:
        return "debootstrap and chroot need root"
    for tool in ("debootstrap", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install debootstrap"
    emulator = {"armhf": "qemu-arm", "arm64": "qemu-aarch64"}.get(arch)
    if emulator and not Path(f"/proc/sys/fs/binfmt_misc/{emulator}").exists():
        return (f"no {emulator} in binfmt_misc: apt-get install qemu-user-static binfmt-support (and mount "
                "binfmt_misc on /proc/sys/fs/binfmt_misc)")
    return None


def ensure_root(root: Optional[Path] = None, arch: str = "i386") -> Path:
    """The complete `arch` root at `root` (default `default_root(arch)`), made first when missing. Raises RootError."""
    if arch not in PACKAGES:
        raise RootError(f"--arch {arch}: one of {sorted(PACKAGES)}")
    root = Path(root) if root is not None else default_root(arch)
    if root.exists():
        return root
    problem = _problem(arch)
    if problem:
        raise RootError(f"cannot make the {arch} root at {root}: {problem}")
    # made whole in a staging folder beside it under a lock, renamed into place when complete (asc_tf.io.build_once)
    return build_once(root, lambda stage: _build(stage, root.with_name(root.name + ".log"), arch))


def _build(stage: Path, log_path: Path, arch: str) -> None:
    command = ["debootstrap", "--arch", arch, "--variant=minbase", f"--include={','.join(PACKAGES[arch])}", SUITE,
               str(stage)]
    env = dict(os.environ)
    if arch in EMULATED_CPU:  # the second stage runs emulated: a Pi's core, not qemu's default `max` model
        env["QEMU_CPU"] = EMULATED_CPU[arch]
    with open(log_path, "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=7200, env=env)
    if done.returncode != 0:
        details = stage / "debootstrap" / "debootstrap.log"
        if details.is_file():  # the stage is removed: keep its details beside the log
            shutil.copyfile(details, log_path.with_suffix(".details.log"))
        last = (log_path.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise RootError(f"debootstrap failed ({last}); full log: {log_path}")
    for package in (stage / "var" / "cache" / "apt" / "archives").glob("*.deb"):  # 100s of MB, never used again
        package.unlink()
    probe = run_in_root(stage, ["python3", "-c", PROBE], cpu=EMULATED_CPU.get(arch))
    if probe.returncode != 0:
        raise RootError(f"the new {arch} root's python3 cannot import numpy/scipy: {probe.stderr.strip()[-300:]}")
    versions = json.loads(probe.stdout)
    if versions["pointer_bits"] != POINTER_BITS[arch]:
        raise RootError(f"the new root's python is not {POINTER_BITS[arch]}-bit ({versions}): is {arch} supported?")
    if (Path("/etc/resolv.conf")).is_file():  # pip inside the root (armhf) reaches PyPI with the host's resolver
        shutil.copyfile("/etc/resolv.conf", stage / "etc" / "resolv.conf")
    (stage / MARKER).write_text(json.dumps({"suite": SUITE, "arch": arch, "packages": list(PACKAGES[arch]),
                                            **versions}) + "\n")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="i386", choices=sorted(PACKAGES), help="Debian architecture (default i386)")
    parser.add_argument("--root", type=Path, default=None,
                        help="where (default: $ASC_TF_<ARCH>_ROOT or ~/.cache/asc_tf/debian-<arch>-bookworm)")
    parser.add_argument("--print", action="store_true", help="print the root's path and versions")
    args = parser.parse_args(argv)
    try:
        root = ensure_root(args.root, args.arch)
    except (RootError, OSError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.print:
        print(root, json.dumps(describe(root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
