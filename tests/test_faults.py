"""Fault injection: every bad input or damaged file gives one line naming it and what to do, exit code 2 for
bad input and 1 for anything else, no traceback, and nothing half-written left behind (docs/faults.md)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asc_tf.data.convert import MANIFEST, convert_dataset
from asc_tf.data.convert import main as convert_main
from asc_tf.data.meta import read_meta
from asc_tf.data.pipeline import ShardError
from asc_tf.export.manifest import ManifestError

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))


def one_error_line(err: str, *fragments: str) -> str:
    """The single `error:` line of a command's stderr (logging lines may precede it), holding `fragments`."""
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def dead_pid() -> int:
    """The pid of a process that has ended (for temporaries left by a killed process)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def flip_bytes(path: Path, offset: int = 300_000, count: int = 16) -> None:
    """Damage a file in place without changing its size (a bad disk sector, a bit flip)."""
    data = bytearray(path.read_bytes())
    offset = min(offset, len(data) // 2)
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture()
def shard_copy(data_config, shards_dir, tmp_path):
    """A copy of the session's converted shards (same source, same fingerprint) that a test may damage."""
    tfrecords = tmp_path / "tfr"
    shutil.copytree(shards_dir, tfrecords / shards_dir.name)
    return data_config.replace(tfrecords_dir=str(tfrecords)), tfrecords / shards_dir.name


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tfrecord"))}


# ------------------------------------------------------------------------------------ damaged shards
def test_corrupt_shard_during_training_names_it_and_leaves_no_run(shard_copy, shards_dir, dataset_dir, tmp_path,
                                                                  capsys):
    import train as train_script

    config, out = shard_copy
    shard = out / "tier005-00000-of-00001.tfrecord"
    flip_bytes(shard)
    code = train_script.main(["--dataset_dir", str(dataset_dir), "--tfrecords_dir", config.tfrecords_dir,
                              "--clips_per_shard", "32", "--subset", "5", "--n_epochs", "1", "--batch_size", "16",
                              "--wandb", "disabled", "--project_dir", str(tmp_path / "runs")])
    line = one_error_line(capsys.readouterr().err, str(shard), "corrupt", "corrupted record at",
                          "reconvert with python -m asc_tf.data.convert", "--verify")
    assert code == 2
    runs = tmp_path / "runs" / "DCASE24_Task1"
    assert not runs.exists() or not any(runs.iterdir())  # failed before its first checkpoint: no run folder
    remedy = shlex.split(line.split("reconvert with ", 1)[1])  # the command works as printed
    assert remedy[:3] == ["python", "-m", "asc_tf.data.convert"] and convert_main(remedy[3:]) == 0
    assert shard_bytes(out) == shard_bytes(shards_dir)


def test_corrupt_shard_while_streaming_is_named_too(shard_copy, tmp_path):
    from asc_tf.training.trainer import train

    config, out = shard_copy
    shard = out / "tier005-00000-of-00001.tfrecord"
    flip_bytes(shard)
    config = config.replace(cache="no", subset=5, n_epochs=1, wandb="disabled", project_dir=str(tmp_path / "runs"))
    with pytest.raises(ShardError, match=f"{shard}: contents differ .*--verify"):
        train(config, verbose=0, progress=False)
    assert not any((tmp_path / "runs" / "DCASE24_Task1").iterdir())


def test_convert_verify_finds_a_corrupt_shard_and_reconverts_only_it(shard_copy, shards_dir, capsys):
    config, out = shard_copy
    shard = out / "test-00001-of-00004.tfrecord"
    flip_bytes(shard)
    others = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord") if p != shard}
    code = convert_main(["--dataset_dir", config.dataset_dir, "--tfrecords_dir", config.tfrecords_dir,
                         "--clips_per_shard", "32", "--num_workers", "1", "--verify"])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert shard_bytes(out) == shard_bytes(shards_dir)  # repaired, byte for byte
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord") if p != shard} == others


def test_truncated_shard_is_named_when_reconverted(shard_copy, shards_dir, caplog):
    config, out = shard_copy
    shard = out / "tier010-00000-of-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        convert_dataset(config, progress=False)
    assert any(str(shard) in r.getMessage() and "truncated" in r.getMessage() and "reconverting" in r.getMessage()
               for r in caplog.records)
    assert shard_bytes(out) == shard_bytes(shards_dir)


def test_missing_shard_when_reading_names_the_remedy(shard_copy):
    from asc_tf.data.pipeline import split_shards

    config, out = shard_copy
    (out / "tier005-00000-of-00001.tfrecord").unlink()
    with pytest.raises(ShardError, match="tier005-00000-of-00001.tfrecord: shard missing: reconvert with "
                                         "python -m asc_tf.data.convert .*--verify"):
        split_shards(out, 5)


# ------------------------------------------------------------------------------ run folder lifecycle
def test_resume_of_a_run_killed_in_its_first_epoch_explains(data_config, tmp_path, capsys):
    import train as train_script
    from asc_tf.training.runs import create_run

    config = data_config.replace(project_dir=str(tmp_path))
    run = create_run(config)  # what a kill -9 during epoch 1 leaves: config.json and an empty checkpoints/
    code = train_script.main(["--resume", run.run_id, "--project_dir", str(tmp_path), "--wandb", "disabled"])
    assert code == 2
    one_error_line(capsys.readouterr().err, f"run {run.run_id} stopped before its first epoch ended",
                   "nothing to resume", f"delete {run.path}")


# ------------------------------------------------------------------ conversion processes and temporaries
def _children(pid: int) -> dict[int, str]:
    """Live processes whose parent is `pid` (from /proc): pid -> state letter."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = fields[0]
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
def test_conversion_workers_end_when_the_conversion_is_killed(dataset_dir, tmp_path):
    command = [sys.executable, "-m", "asc_tf.data.convert", "--dataset_dir", str(dataset_dir),
               "--tfrecords_dir", str(tmp_path), "--clips_per_shard", "8", "--num_workers", "2"]
    parent = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        children: dict[int, str] = {}
        while time.monotonic() < deadline and len(children) < 2 and parent.poll() is None:
            time.sleep(0.2)
            children = _children(parent.pid)
        assert len(children) >= 2 and parent.poll() is None, "the conversion ended before its workers were seen"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_running(pid) for pid in children):
            time.sleep(0.2)
        assert not [pid for pid in children if _running(pid)], "orphaned conversion workers"
    finally:
        for pid in _children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()


def test_stale_temporaries_of_a_killed_conversion_are_removed(shard_copy):
    config, out = shard_copy
    gone, alive = dead_pid(), os.getpid()
    stale = [out / f".conversion.json.{gone}.k3j4h5g6.tmp", out / f".test-00000-of-00004.tfrecord.{gone}.ab12cd34.tmp"]
    live = out / f".conversion.json.{alive}.zz99yy88.tmp"  # a conversion still writing: kept
    for path in [*stale, live]:
        path.write_bytes(b"half written")
    convert_dataset(config, progress=False)
    assert not any(p.exists() for p in stale) and live.exists()


def test_killed_prediction_leaves_nothing_for_the_next_one(trained_run, tmp_path):
    from asc_tf.predict import predict_evaluation_set

    config = trained_run.run.load_config().replace(project_dir=str(tmp_path))
    predictions = tmp_path / "predictions"
    stale = predictions / f".model.{dead_pid()}.x1y2z3w4.tmp"  # the staging folder of a killed predict
    stale.mkdir(parents=True)
    (stale / "output.csv").write_text("filename\tscene_label\nhalf")
    output = predict_evaluation_set(config, model_path=trained_run.run.final_model, progress=False)
    assert not stale.exists() and sorted(p.name for p in predictions.iterdir()) == ["model"]
    umask = os.umask(0)
    os.umask(umask)
    assert (output.parent.stat().st_mode & 0o777) == (0o777 & ~umask)  # not mkdtemp's 0700


# ------------------------------------------------------------------------------------ audio tails
@pytest.fixture(scope="module")
def bundle_copy(int8_export, tmp_path_factory):
    """The session's int8 bundle, copied so that a test may edit its manifest."""
    def make() -> Path:
        target = tmp_path_factory.mktemp("bundle") / "int8"
        shutil.copytree(int8_export.path, target)
        return target
    return make


def edge(bundle: Path, *inputs: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asc_tf.edge", str(bundle), *inputs], input=stdin,
                          capture_output=True, env=ENV)


def test_tail_of_a_file_or_stream_is_named_and_a_short_one_refused(int8_export, tmp_path):
    rng = np.random.default_rng(1)
    pcm = (rng.normal(size=int(32000 * 2.5)) * 3000).astype("<i2")
    sf.write(str(tmp_path / "long.wav"), pcm, 32000, subtype="PCM_16")
    sf.write(str(tmp_path / "short.wav"), pcm[:16000], 32000, subtype="PCM_16")
    files = edge(int8_export.path, str(tmp_path / "long.wav"))
    assert files.returncode == 0 and len(files.stdout.decode().splitlines()) == 2
    err = files.stderr.decode()
    assert f"warning: {tmp_path / 'long.wav'}: the last 0.500 s (16000 samples at 32000 Hz)" in err
    stream = edge(int8_export.path, "-", stdin=pcm.tobytes())
    assert stream.returncode == 0 and len(stream.stdout.decode().splitlines()) == 2
    assert "warning: standard input: the last 0.500 s (16000 samples" in stream.stderr.decode()
    short = edge(int8_export.path, str(tmp_path / "short.wav"))
    assert short.returncode == 2 and short.stdout == b""
    one_error_line(short.stderr.decode(), "short.wav: 0.5 s long, shorter than one clip", "nothing to classify")
    short_stream = edge(int8_export.path, "-", stdin=pcm[:16000].tobytes())
    assert short_stream.returncode == 2 and short_stream.stdout == b""
    one_error_line(short_stream.stderr.decode(), "the stream ended after 16,000 samples, before one whole clip")


# -------------------------------------------------------------------------------- manifest vs files
def _edit(bundle: Path, change) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    change(manifest)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


MANIFEST_EDITS = {
    "sample rate": (lambda m: m.update(sample_rate=16000), "sample_rate 16000 Hz, the front end is made for 32000"),
    "classes cut": (lambda m: m.update(classes=m["classes"][:9]), "9 classes listed, network_int8.tflite outputs 10"),
    "input scale": (lambda m: m["inputs"]["network"].update(scale=m["inputs"]["network"]["scale"] * 1.5),
                    "inputs.network: quantization"),
    "output zero point": (lambda m: m["outputs"]["network"].update(zero_point=m["outputs"]["network"]["zero_point"] + 3),
                          "outputs.network: quantization"),
    "clip length": (lambda m: m.update(clip_samples=16000), "clip_samples 16000"),
    "front end": (lambda m: m["frontend"].update(f_max=12000), "do not compute what frontend_float32.tflite computes"),
    "field missing": (lambda m: m.pop("classes"), "field(s) ['classes'] missing"),
    "front-end field type": (lambda m: m["frontend"].update(n_fft="4096"),
                             "frontend: n_fft must be a positive integer, got '4096'"),
}


@pytest.mark.parametrize("case", list(MANIFEST_EDITS))
def test_a_manifest_that_disagrees_with_its_files_is_one_error(bundle_copy, case):
    from asc_tf.export.bundle import load_bundle

    change, message = MANIFEST_EDITS[case]
    bundle = bundle_copy()
    _edit(bundle, change)
    result = edge(bundle, "-", stdin=np.zeros(32000, "<i2").tobytes())
    assert result.returncode == 2 and result.stdout == b""
    one_error_line(result.stderr.decode(), str(bundle / MANIFEST), message)
    with pytest.raises(ManifestError, match="manifest"):
        load_bundle(bundle)


def test_manifest_checks_have_one_home():
    import inspect

    import asc_tf.edge.bundle as edge_bundle
    import asc_tf.export.bundle as export_bundle

    for reader in (edge_bundle.read_manifest, export_bundle.load_bundle):  # both delegate to asc_tf.export.manifest
        source = inspect.getsource(reader)
        assert "file_sha256" not in source and "json.loads" not in source and "read_manifest(" in source


# ------------------------------------------------------------------------ other tools' bad input
def test_report_counts_a_run_given_twice_once(trained_run, capsys):
    from asc_tf.report import main as report_main

    path = str(trained_run.run.path)
    assert report_main([path, path, str(trained_run.run.path / "info.json")]) == 0
    out = capsys.readouterr().out
    runs_line = next(line for line in out.splitlines() if line.startswith("Runs: "))
    assert runs_line.count(trained_run.run.run_id) == 1


def test_torch_import_of_a_missing_file_says_so(tmp_path, capsys):
    from asc_tf.torch_import import main as import_main

    assert import_main([str(tmp_path / "last.ckpt"), "--out", str(tmp_path / "m.keras")]) == 2
    one_error_line(capsys.readouterr().err, "last.ckpt: file does not exist")
    assert not (tmp_path / "m.keras").exists()


def test_wav_listed_but_missing_points_at_its_meta_row(dataset_dir, tmp_path, capsys):
    source = tmp_path / dataset_dir.name
    shutil.copytree(dataset_dir, source)
    meta = read_meta(source / "meta.csv")
    row = meta.iloc[5]
    (source / row["filename"]).unlink()
    code = convert_main(["--dataset_dir", str(source), "--tfrecords_dir", str(tmp_path / "tfr"), "--num_workers", "1"])
    assert code == 2
    one_error_line(capsys.readouterr().err, f"{source / row['filename']}: listed in {source / 'meta.csv'} "
                   f"line {row['_line']} but missing on disk", "remove its row from meta.csv", "--skip_bad")
    assert not any((tmp_path / "tfr").rglob("*.tfrecord"))  # refused before converting anything


@pytest.mark.parametrize("damage, message", [
    ("commas", "columns are separated by commas"),
    ("unknown scene", "unknown scene 'beach'"),
])
def test_convert_bad_metadata_exits_2(dataset_dir, tmp_path, capsys, damage, message):
    source = tmp_path / dataset_dir.name
    source.mkdir()
    (source / "split_setup").symlink_to(dataset_dir / "split_setup")
    text = (dataset_dir / "meta.csv").read_text()
    text = text.replace("\t", ",") if damage == "commas" else text.replace("\tairport\t", "\tbeach\t", 1)
    (source / "meta.csv").write_text(text)
    assert convert_main(["--dataset_dir", str(source), "--tfrecords_dir", str(tmp_path / "tfr")]) == 2
    one_error_line(capsys.readouterr().err, str(source / "meta.csv"), message)


def test_convert_command_line_exit_codes(tmp_path):
    result = subprocess.run([sys.executable, "-m", "asc_tf.data.convert", "--dataset_dir", str(tmp_path / "none")],
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 2
    one_error_line(result.stderr, "no TAU dataset at")
    usage = subprocess.run([sys.executable, "-m", "asc_tf.data.convert", "--storage_dtype", "int4"],
                           capture_output=True, text=True, env=ENV)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
