#!/usr/bin/env bash
# Before a release: docs/edge.md's Raspberry Pi OS install and the edge commands, run in an emulated Debian bookworm root,
# and the decisions compared with this machine's. Maintainers run it; CI does not (minutes, emulated).
#   ARCH=armhf: 32-bit Raspberry Pi OS (default): Debian's numpy/scipy/cffi in a --system-site-packages venv, `.[edge]`;
#               QEMU_CPU=cortex-a15, qemu-arm's ARMv7-A core with NEON/VFPv4 (it has no Cortex-A72/A53 model)
#   ARCH=arm64: 64-bit Raspberry Pi OS: requirements-edge.txt with constraints-edge.txt, then `.` without deps;
#               QEMU_CPU=cortex-a72 (a Pi 4's core; qemu's default `max` gives wrong int8 results there)
#   sudo [ARCH=arm64] [QEMU_CPU=...] bash tools/pi_emulation.sh BUNDLE CLIP.wav [CLIP.wav ...]   (repository root)
# Needs root, debootstrap, qemu-user-static + binfmt-support (binfmt_misc mounted), PyPI from inside the root.
# The root is made once by tools/debian_root.py --arch $ARCH (~/.cache/asc_tf/debian-$ARCH-bookworm); each run
# installs into a fresh venv there. Prints the versions, the selftest line and the differences; exit 0 when every
# clip gets the same scene, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: sudo bash tools/pi_emulation.sh BUNDLE CLIP.wav [CLIP.wav ...]" >&2
  exit 2
fi
bundle="$(realpath "$1")"; shift
PYTHON="${PYTHON:-python}"
ARCH="${ARCH:-armhf}"
case "$ARCH" in
  armhf) QEMU_CPU="${QEMU_CPU:-cortex-a15}" ;;
  arm64) QEMU_CPU="${QEMU_CPU:-cortex-a72}" ;;
  *) echo "ARCH must be armhf or arm64, got $ARCH" >&2; exit 2 ;;
esac
root="$("$PYTHON" tools/debian_root.py --arch "$ARCH" --print | cut -d' ' -f1)"
work="/opt/asc-tf-emulation"
rm -rf "$root$work" && mkdir -p "$root$work/src" "$root$work/clips"
cp -r asc_tf pyproject.toml README.md requirements*.txt constraints*.txt "$root$work/src/"
find "$root$work/src" -name __pycache__ -prune -exec rm -rf {} +
cp -r "$bundle" "$root$work/bundle"
for clip in "$@"; do cp "$clip" "$root$work/clips/"; done

CHROOT="$(command -v chroot)"
extra=()
in_root() {  # a command in the root, emulated as $QEMU_CPU, with a clean environment (plus $extra)
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" "${extra[@]}" \
    "$CHROOT" "$root" "$@"
}
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then  # behind a TLS-inspecting proxy: the root's pip needs its CA
  cp "$PIP_CERT" "$root$work/ca.crt" && extra=(PIP_CERT="$work/ca.crt")
fi
pip=("$work/venv/bin/python" -m pip install -q --disable-pip-version-check)
if [ "$ARCH" = armhf ]; then  # docs/edge.md's 32-bit install: Debian's numpy/scipy/cffi (no armv7l wheels on PyPI)
  in_root python3 -m venv --system-site-packages "$work/venv"
  in_root "${pip[@]}" "$work/src[edge]"
else  # docs/edge.md's 64-bit install: the pinned wheels
  in_root python3 -m venv "$work/venv"
  in_root "${pip[@]}" -r "$work/src/requirements-edge.txt" -c "$work/src/constraints-edge.txt"
  in_root "${pip[@]}" --no-deps "$work/src"
fi
extra=()
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); QEMU_CPU=$QEMU_CPU; $(in_root uname -m)"
echo "$ARCH: $(in_root "$work/venv/bin/python" -m asc_tf.edge --version)"
echo "here:  $("$PYTHON" -m asc_tf.edge --version)"
in_root "$work/venv/bin/python" -m asc_tf.edge --selftest "$work/bundle" || true
in_root sh -c "cd $work/clips && $work/venv/bin/python -m asc_tf.edge $work/bundle *.wav" > "$root$work/emulated.txt"
"$PYTHON" -m asc_tf.edge "$bundle" "$root$work/clips/"*.wav > "$root$work/here.txt"
"$PYTHON" - "$root$work/here.txt" "$root$work/emulated.txt" <<'EOF'
import sys
here, there = ([line.split() for line in open(path)] for path in sys.argv[1:])
assert len(here) == len(there) and here, "not the same number of decisions"
# a line: FILE  TIME s  SCENE  PROBABILITY
same = sum(a[3] == b[3] for a, b in zip(here, there))
worst = max((abs(float(a[4]) - float(b[4])) for a, b in zip(here, there) if a[3] == b[3]), default=0.0)
print(f"{len(here)} decisions: {same} the same scene, largest probability difference {worst:.3f}")
for a, b in zip(here, there):
    if a[3] != b[3]:
        print(f"  {b[0]} {b[1]} s: here {a[3]} {a[4]}, emulated {b[3]} {b[4]}")
sys.exit(0 if same == len(here) else 1)
EOF
