#!/usr/bin/env bash
# Regenerate the locks: constraints.txt (every package requirements.txt and requirements-protocol.txt install,
# transitive included) and
# constraints-edge.txt (the same for requirements-edge.txt), each from `pip freeze` of a clean venv.
#   bash tools/lock.sh            (from the repository root, with the Python the pins are for: 3.11)
# Then run the tests (`python -m pip install -r requirements.txt -c constraints.txt && python -m pytest`) and
# commit the two files. requirements-edge-armv7.txt pins all of its packages itself (tests check it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for pair in "requirements.txt requirements-protocol.txt:constraints.txt" "requirements-edge.txt:constraints-edge.txt"; do
  requirements="${pair%%:*}" lock="${pair##*:}"
  "$PYTHON" -m venv "$work/venv"
  # shellcheck disable=SC2046  # one -r per requirements file
  "$work/venv/bin/python" -m pip install -q --disable-pip-version-check $(printf -- "-r %s " $requirements)
  {
    echo "# Lock of every package that 'pip install -r $requirements' installs (transitive included), from pip"
    echo "# freeze of a clean venv: $("$work/venv/bin/python" -c 'import platform; print("Python", platform.python_version(), platform.machine())'), $(date -u +%Y-%m-%d)."
    echo "# Use: python -m pip install -r $requirements -c $lock   Regenerate: bash tools/lock.sh"
    "$work/venv/bin/python" -m pip freeze --all | grep -v '^pip=='
  } > "$lock.tmp"
  mv "$lock.tmp" "$lock"
  rm -rf "$work/venv"
  echo "wrote $lock ($(grep -c '==' "$lock") packages)"
done
