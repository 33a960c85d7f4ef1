"""The pins the README's commands install, their locks (every transitive package) and pyproject's extras agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PAIRS = [("requirements.txt", "constraints.txt"), ("requirements-edge.txt", "constraints-edge.txt")]


def _requirements(name: str) -> list[Requirement]:
    lines = (REPO / name).read_text().splitlines()
    return [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]


def _pins(name: str) -> dict[str, str]:
    """{canonical name: version} of a file of exact pins; anything else fails."""
    pins: dict[str, str] = {}
    for requirement in _requirements(name):
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and not requirement.marker, f"{name}: {requirement}"
        key = canonicalize_name(requirement.name)
        assert key not in pins, f"{name}: {key} twice"
        pins[key] = specs[0].version
    return pins


@pytest.mark.parametrize("requirements, lock", PAIRS)
def test_lock_holds_every_pin_at_its_version(requirements, lock):
    pins, locked = _pins(requirements), _pins(lock)
    assert {name: locked.get(name) for name in pins} == pins
    assert len(locked) > len(pins)  # the transitive packages are locked too
    assert "pip" not in locked  # the installer is not part of the lock (setuptools is: TensorFlow requires it)


def test_lock_holds_the_optional_protocol_pin():
    """CI installs requirements-protocol.txt (Ray) with the same lock: its pin and extra agree with it."""
    pins, locked = _pins("requirements-protocol.txt"), _pins("constraints.txt")
    assert pins and {name: locked.get(name) for name in pins} == pins
    for requirement in _extra("protocol", "x86_64"):
        key = canonicalize_name(requirement.name)
        assert key in pins and requirement.specifier.contains(pins[key]), requirement


def test_edge_lock_is_the_full_locks_subset():
    """An edge install beside a full one resolves to the same versions."""
    full, edge = _pins("constraints.txt"), _pins("constraints-edge.txt")
    assert {name: full.get(name) for name in edge} == edge


def test_armv7_file_pins_everything_at_numpy_1():
    pins = _pins("requirements-edge-armv7.txt")
    assert {"numpy", "scipy", "tflite-runtime", "soundfile", "cffi", "pycparser", "typing-extensions"} == set(pins)
    assert pins["numpy"].startswith("1.")  # tflite-runtime 2.14 is built against numpy 1.x
    assert "ai-edge-litert" not in pins


def _extra(name: str, machine: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["optional-dependencies"][name]]
    environment = {"platform_machine": machine, "extra": name}
    return [r for r in requirements if r.marker is None or r.marker.evaluate(environment)]


@pytest.mark.parametrize("extras, machine, pin_file", [
    (["edge"], "x86_64", "requirements-edge.txt"), (["edge"], "aarch64", "requirements-edge.txt"),
    (["edge"], "armv7l", "requirements-edge-armv7.txt"), (["train", "qat", "dev"], "x86_64", "requirements.txt")])
def test_pyproject_extras_admit_the_pins(extras, machine, pin_file):
    pins = _pins(pin_file)
    direct = {canonicalize_name(r.name) for r in _requirements(pin_file)}
    names = set()
    for extra in extras:
        for requirement in _extra(extra, machine):
            key = canonicalize_name(requirement.name)
            if key == "asc-tf":
                continue  # self-reference (qat = train + ...)
            names.add(key)
            assert key in pins, f"[{extra}] {requirement} is not pinned in {pin_file}"
            assert requirement.specifier.contains(pins[key]), f"[{extra}] {requirement} excludes {pins[key]}"
    if pin_file == "requirements-edge-armv7.txt":
        # the rest are their dependencies; cffi (soundfile's) is named so that Debian's python3-cffi satisfies it
        assert names == {"numpy", "scipy", "tflite-runtime", "soundfile", "cffi"}
    else:
        assert names == direct


@pytest.mark.parametrize("pin_file, tool", [("requirements-metadata.txt", "tflite-support"),
                                            ("requirements-mediapipe.txt", "mediapipe")])
def test_tool_venv_files_pin_everything(pin_file, tool):
    """The metadata writer's and MediaPipe's venvs (asc_tf.export.venv): every package pinned, the numpy of the
    training pins (they run beside no TensorFlow, but read and write the same files)."""
    pins = _pins(pin_file)  # exact pins only, each package once
    assert tool in pins and len(pins) > 5
    assert pins["numpy"] == _pins("requirements.txt")["numpy"]
