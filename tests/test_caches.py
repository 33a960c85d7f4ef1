"""Every cache the project keeps is safe to share: two makers of one entry at once, and a maker killed mid-way,
never leave or reuse a half-made entry. Covered: the TFLite Micro library cache of firmware/Makefile, the
`build_once` folders (the tflite-runtime venv of the tests, the i386 root), the synthetic dataset, the shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asc_tf.io import build_once, lock_path

REPO = Path(__file__).resolve().parents[1]
MAKEFILE = REPO / "firmware" / "Makefile"


def _kernel_names() -> list[str]:
    """The kernels firmware/Makefile compiles (TFLM_KERNELS), read from the Makefile itself."""
    text = MAKEFILE.read_text()
    block = text[text.index("TFLM_KERNELS :="):].split("\n\n", 1)[0].split("\nTFLM_CC", 1)[0]
    return block.replace("TFLM_KERNELS :=", "").replace("\\", " ").split()


@pytest.fixture()
def fake_tflm(tmp_path) -> dict:
    """A TFLite Micro tree of one-line sources, and a compiler that logs each compile and takes 0.2 s: the
    Makefile's cache logic at full scale (dozens of objects, parallel jobs) in seconds."""
    tree = tmp_path / "tree"
    kernels = tree / "tensorflow" / "lite" / "micro" / "kernels"
    kernels.mkdir(parents=True)
    (tree / "third_party").mkdir()
    (tree / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").write_text("")
    for name in _kernel_names():
        (kernels / f"{name}.cc").write_text(f"int asc_test_{name}() {{ return 1; }}\n")
    log = tmp_path / "compiles.log"
    cxx = tmp_path / "slow-g++"
    cxx.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        [ "$1" = --version ] && exec g++ --version
        echo "$$ $*" >> {log}
        sleep 0.2
        exec g++ "$@"
        """))
    cxx.chmod(0o755)
    sources = sorted(kernels.glob("*.cc"))
    return {"tree": tree, "cache": tmp_path / "cache", "log": log, "cxx": cxx, "n": len(sources)}


def _make_tflm(fake: dict, **popen) -> subprocess.Popen:
    return subprocess.Popen(["make", "-s", "-f", str(MAKEFILE), "-j2", "tflm", "TARGET=host", "KERNELS=reference",
                             f"TFLM_DIR={fake['tree']}", f"TFLM_CACHE_ROOT={fake['cache']}", f"CXX={fake['cxx']}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _entries(fake: dict) -> list[Path]:
    return sorted(p for p in fake["cache"].iterdir() if not p.name.endswith(".lock"))


def _archived(library: Path) -> list[str]:
    return subprocess.run(["ar", "t", str(library)], capture_output=True, text=True, check=True).stdout.split()


def _compiles(fake: dict) -> list[str]:
    return fake["log"].read_text().splitlines() if fake["log"].exists() else []


needs_make = pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v make && command -v g++ && command -v ar"],
                                               capture_output=True).returncode != 0,
                                reason="make, g++ or ar missing (.ci/run installs them)")


@needs_make
def test_two_tflm_builds_of_one_entry_at_once_compile_it_once(fake_tflm):
    first, second = _make_tflm(fake_tflm), _make_tflm(fake_tflm)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    entries = _entries(fake_tflm)
    assert len(entries) == 1 and not entries[0].name.count(".staging-"), entries  # one entry, no staging left
    assert len(_archived(entries[0] / "libtflm.a")) == fake_tflm["n"]
    assert len(_compiles(fake_tflm)) == fake_tflm["n"]  # the second build waited and reused the first's
    assert any("made meanwhile by another build" in out for out in outputs), outputs


@needs_make
def test_a_killed_tflm_build_leaves_no_entry_and_the_next_build_completes(fake_tflm):
    build = _make_tflm(fake_tflm, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_compiles(fake_tflm)) < 6 and time.monotonic() < deadline and build.poll() is None:
        time.sleep(0.05)
    assert build.poll() is None, "the build ended before it could be killed"
    os.killpg(build.pid, signal.SIGKILL)  # make, the sub-make, flock and the compilers: as a Ctrl-C or an OOM kill
    build.wait()
    leftovers = _entries(fake_tflm)
    assert all(".staging-" in p.name for p in leftovers), leftovers  # no half-made entry under the final name
    time.sleep(0.5)  # compilers that were running when killed are gone
    again = _make_tflm(fake_tflm)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out
    entries = _entries(fake_tflm)
    assert len(entries) == 1 and ".staging-" not in entries[0].name, entries  # the killed build's staging removed
    assert len(_archived(entries[0] / "libtflm.a")) == fake_tflm["n"]


_BUILDER = """
import sys, time
from pathlib import Path
from asc_tf.io import build_once

def make(stage):
    for i in range(int(sys.argv[3])):
        (stage / f"part{i}").write_text(sys.argv[2])
        time.sleep(0.05)
    (stage / "done").write_text(sys.argv[2])

print(build_once(Path(sys.argv[1]), make), flush=True)
"""


def _builder(target: Path, name: str, parts: int = 20, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _BUILDER, str(target), name, str(parts)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_build_once_two_makers_at_once_one_result(tmp_path):
    target = tmp_path / "entry"
    makers = [_builder(target, "a"), _builder(target, "b")]
    for maker in makers:
        out, err = maker.communicate(timeout=120)
        assert maker.returncode == 0 and out.strip() == str(target), err
    made_by = (target / "done").read_text()
    assert {(target / f"part{i}").read_text() for i in range(20)} == {made_by}  # one maker's files, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["entry", lock_path(target).name])


def test_build_once_after_a_killed_maker(tmp_path):
    target = tmp_path / "entry"
    maker = _builder(target, "killed", parts=400)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(tmp_path.glob(".entry.*.tmp/part3")):
        time.sleep(0.02)
    maker.send_signal(signal.SIGKILL)
    maker.wait()
    assert not target.exists() and list(tmp_path.glob(".entry.*.tmp")), "killed before a staging folder was written"
    again = _builder(target, "again", parts=3)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert (target / "done").read_text() == "again" and not (target / "part3").exists()
    assert not list(tmp_path.glob(".entry.*.tmp"))  # the killed maker's staging folder was removed


def test_build_once_a_failing_maker_leaves_nothing(tmp_path):
    def make(stage: Path) -> None:
        (stage / "half").write_text("x")
        raise RuntimeError("the maker failed")

    with pytest.raises(RuntimeError):
        build_once(tmp_path / "entry", make)
    assert sorted(p.name for p in tmp_path.iterdir()) == [lock_path(tmp_path / "entry").name]


_GENERATE = """
import sys
from asc_tf.data import synthetic
synthetic.generate(sys.argv[1], seed=0, size="tiny", difficulty="easy", workers=1)
"""

_GENERATE_KILLED = """
import os, signal, sys
from asc_tf.data import synthetic
written = []
original = synthetic._write_recording
def write_then_die(job):
    written.append(job)
    if len(written) == 5:
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-way, as by Ctrl-C or the OOM killer
    return original(job)
synthetic._write_recording = write_then_die
synthetic.generate(sys.argv[1], seed=0, size="tiny", difficulty="easy", workers=1)
"""


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_dataset_two_makers_at_once_and_a_killed_one(tmp_path):
    from asc_tf.data.synthetic import DESCRIPTION_NAME, DEV_DIR_NAME

    killed = subprocess.run([sys.executable, "-c", _GENERATE_KILLED, str(tmp_path / "data")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "data" / DEV_DIR_NAME).exists()  # only its staging folder, nothing under the real names
    makers = [subprocess.Popen([sys.executable, "-c", _GENERATE, str(tmp_path / "data")], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for maker in makers:
        _, err = maker.communicate(timeout=300)
        assert maker.returncode == 0, err
    shared = _tree(tmp_path / "data")
    assert DESCRIPTION_NAME in shared and not [p for p in shared if ".tmp" in p], [p for p in shared if ".tmp" in p]
    alone = tmp_path / "alone"
    subprocess.run([sys.executable, "-c", _GENERATE, str(alone)], cwd=REPO, check=True, timeout=300)
    assert shared == _tree(alone)  # byte-identical to a dataset made by one uninterrupted call


def test_two_conversions_of_one_dataset_at_once(dataset_dir, tmp_path):
    """Two conversions into one folder (two jobs, two checkouts): the second waits for the first and finds the
    shards done; the shards equal a conversion on its own."""
    script = textwrap.dedent("""
        import sys
        from asc_tf.config import Config
        from asc_tf.data.convert import convert_dataset
        config = Config(dataset_dir=sys.argv[1], tfrecords_dir=sys.argv[2], clips_per_shard=32, num_workers=1)
        convert_dataset(config, progress=False)
        """)
    runs = [subprocess.Popen([sys.executable, "-c", script, str(dataset_dir), str(tmp_path / "shared")], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    subprocess.run([sys.executable, "-c", script, str(dataset_dir), str(tmp_path / "alone")], cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    shared, alone = _tree(tmp_path / "shared"), _tree(tmp_path / "alone")
    shards = sorted(p for p in alone if p.endswith(".tfrecord"))
    assert shards and [p for p in shared if p.endswith(".tfrecord")] == shards
    assert all(shared[p] == alone[p] for p in shards)
