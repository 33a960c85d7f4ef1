"""Resource faults of atomic writes (asc_tf/storage.py): each provoked without special hardware; the file is
either the old one or the new one, never torn, and the message is one line naming the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asc_tf import io, storage

ROOT = os.geteuid() == 0
WRITE = textwrap.dedent("""
    import sys
    from asc_tf import io
    from asc_tf.storage import ResourceError
    try:
        io.atomic_write_bytes(sys.argv[1], b"n" * int(sys.argv[2]))
    except ResourceError as error:
        print(f"error: {error}", file=sys.stderr); sys.exit(2)
""")


def _run(target: Path, size: int, preexec=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRITE, str(target), str(size)], capture_output=True, text=True,
                          preexec_fn=preexec, env={**os.environ, **(env or {})}, cwd=Path(__file__).parents[1])


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_file_size_limit_gives_one_line_and_keeps_the_old_file(tmp_path):
    import resource

    target = tmp_path / "info.json"
    target.write_bytes(b"old")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write returns EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = _run(target, 1 << 20, preexec=limit)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {target}: file larger than the size limit"), lines
    assert target.read_bytes() == b"old" and _left(tmp_path) == ["info.json"]


def test_kill_before_rename_leaves_the_old_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "info.json"
    target.write_bytes(b"old")
    done = _run(target, 100, env={storage.KILL_ENV: "info.json:1"})
    assert done.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old"
    assert len(_left(tmp_path)) == 2  # the killed writer's temporary, removed by the next run
    assert [p.name for p in io.remove_stale_temporaries(tmp_path)] != []
    io.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and _left(tmp_path) == ["info.json"]


@pytest.fixture
def mounted(tmp_path):
    """A folder to mount on, unmounted afterwards (root only: mount needs CAP_SYS_ADMIN)."""
    if not ROOT:
        pytest.skip("mount (tmpfs, read-only bind) needs root; EFBIG and the kill hook are covered without it")
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], check=False)


def test_full_disk_gives_one_line_with_free_space_and_keeps_the_old_file(mounted):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mounted)], check=True)
    target = mounted / "model.tflite"
    target.write_bytes(b"old")
    done = _run(target, 1 << 20)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on the device (" in lines[0] and "MiB free" in lines[0], lines
    assert lines[0].startswith(f"error: {target}:") and lines[0].endswith("free space or pass --out (--project_dir) elsewhere")
    assert target.read_bytes() == b"old" and _left(mounted) == ["model.tflite"]


def test_read_only_file_system_gives_one_line(tmp_path, mounted):
    (tmp_path / "src").mkdir()
    subprocess.run(["mount", "--bind", str(tmp_path / "src"), str(mounted)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
    done = _run(mounted / "info.json", 10)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only file system" in lines[0], lines
    assert _left(tmp_path / "src") == []


def test_pre_flight_check_names_free_and_needed(tmp_path):
    with pytest.raises(storage.ResourceError, match=r"MiB free, about \d+ MiB needed"):
        storage.check_free_space(tmp_path, 1 << 60)
    storage.check_free_space(tmp_path, 1)
