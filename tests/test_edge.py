"""The edge runtime: a bundle run with numpy + LiteRT only; files, PCM streams, bad input, the TF-free import."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asc_tf.edge import Classifier
from asc_tf.edge.__main__ import main as edge_main
from asc_tf.export.bundle import load_bundle
from asc_tf.export.runtime import Quantization
from int8_tolerances import INPUT_LOGIT_STEPS

REPO = Path(__file__).resolve().parents[1]


def _run_python(code: str, tmp_path: Path) -> dict:
    """Run `code` in a fresh interpreter (repository on the path); it prints one JSON line, returned."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """Four clips of the synthetic test audio's kind: noise with a tone, at different levels."""
    rng = np.random.default_rng(3)
    t = np.arange(32000) / 32000
    return np.stack([(rng.normal(size=32000) * 0.02 * (i + 1) + 0.05 * np.sin(2 * np.pi * 440 * (i + 1) * t))
                     for i in range(4)]).astype(np.float32)


def test_input_quantization_rounds_ties_away_from_zero_and_clips():
    """TFLite's QUANTIZE and the firmware's roundf: ties away from zero (numpy's round would go to even)."""
    q = Quantization(0.25, -3)
    x = np.array([0.125, -0.125, 0.375, -0.375, 0.1, -0.1, 100.0, -100.0, 0.0, -0.0], np.float32)
    np.testing.assert_array_equal(q.quantize(x), np.array([-2, -4, -1, -5, -3, -3, 127, -128, -3, -3], np.int8))
    q = Quantization(0.0627451, 5)
    x = np.random.default_rng(0).normal(-4, 4, (1, 256, 65, 1)).astype(np.float32)
    x.flat[:200] = ((np.arange(200) - 100.5) * np.float64(q.scale)).astype(np.float32)  # ties, up to float32 rounding
    v = x.astype(np.float64) / q.scale
    reference = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + q.zero_point, -128, 127).astype(np.int8)
    out = q.quantize(x)
    assert out.dtype == np.int8 and out.shape == x.shape
    np.testing.assert_array_equal(out, reference)


def test_classifier_equals_the_bundles_litert_pipeline(int8_export, clips):
    edge = Classifier(int8_export.path, num_threads=1)
    shipped = load_bundle(int8_export.path).classifier(num_threads=1)
    for clip in clips:
        probabilities = edge.predict(clip)
        assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-6
        assert np.max(np.abs(edge.log_mel(clip) - shipped.log_mel(clip)[0, ..., 0])) < 1e-4
        q_edge = edge.input_quantization.quantize(edge.log_mel(clip))
        q_tflite = shipped.network.quantize_input(shipped.log_mel(clip))[0, ..., 0]
        assert np.max(np.abs(q_edge.astype(int) - q_tflite.astype(int))) <= 1  # a rounding tie at most
        reference = shipped.logits(clip)[0]
        scale = edge.output_quantization.scale  # same kernels: only the inputs' ties move the logits
        assert np.max(np.abs(edge.logits(clip) - reference)) <= INPUT_LOGIT_STEPS * scale + 1e-6
    with pytest.raises(ValueError, match="expected one clip of 32000 samples"):
        edge.predict(clips[:2])


def test_import_and_classify_without_tensorflow(int8_export, clips, tmp_path):
    sf.write(str(tmp_path / "clip.wav"), clips[0], 32000, subtype="PCM_16")
    np.save(tmp_path / "clip.npy", clips[0])
    out = _run_python(f"""
        import contextlib, io, json, sys
        import numpy as np
        import asc_tf.edge
        from asc_tf.edge import Classifier
        from asc_tf.edge.__main__ import main
        p = Classifier({str(int8_export.path)!r}, num_threads=1).predict(np.load("clip.npy"))
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            code = main([{str(int8_export.path)!r}, "clip.wav"])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print(json.dumps({{"p": p.tolist(), "code": code, "line": text.getvalue(), "heavy": heavy}}))
    """, tmp_path)
    assert out["heavy"] == [] and out["code"] == 0
    np.testing.assert_allclose(out["p"], Classifier(int8_export.path).predict(clips[0]), atol=1e-6)
    assert "clip.wav" in out["line"] and len(out["line"].splitlines()) == 1


def test_import_asc_tf_stays_light_then_load_model_in_a_fresh_process(trained_run, tmp_path):
    model = trained_run.run.path / "model.keras"
    out = _run_python(f"""
        import json, sys
        import asc_tf
        light = "tensorflow" not in sys.modules
        from asc_tf import Config, build_model
        model = asc_tf.load_model({str(model)!r})
        print(json.dumps({{"light": light, "layers": [l.name for l in model.layers],
                          "config": Config().sample_rate, "built": build_model().name}}))
    """, tmp_path)
    assert out["light"] and "frontend" in out["layers"] and out["config"] == 32000 and out["built"] == "cp_mobile"


class OddChunks(io.RawIOBase):
    """A pipe that hands out at most a few odd numbers of bytes per read."""

    def __init__(self, data: bytes) -> None:
        self.data, self.sizes, self.turn = data, (1, 777, 3001, 12345), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = min(self.sizes[self.turn % len(self.sizes)], size if size >= 0 else len(self.data))
        self.turn += 1
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def _decisions(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split()[-2:]) for line in text.strip().splitlines()]


def test_pcm_stream_gives_one_decision_per_second(int8_export, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(5)
    pcm = (rng.normal(size=112000) * 3000).clip(-32768, 32767).astype("<i2")  # 3.5 s at 32 kHz
    files = []
    for second in range(3):
        path = tmp_path / f"second{second}.wav"
        sf.write(str(path), pcm[second * 32000:(second + 1) * 32000], 32000, subtype="PCM_16")
        files.append(str(path))
    assert edge_main([str(int8_export.path), *files]) == 0
    expected = _decisions(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": OddChunks(pcm.tobytes())})())
    assert edge_main([str(int8_export.path), "-", "--latency"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and [line.split()[0] for line in out] == ["0.0", "1.0", "2.0"]
    assert [tuple(line.split()[2:4]) for line in out] == expected
    assert all(" ms (front end " in line for line in out)


def test_files_at_other_rates_are_resampled(int8_export, tmp_path, capsys, clips):
    from asc_tf.data.resample import resample

    path = tmp_path / "clip48k.wav"
    sf.write(str(path), resample(np.tile(clips[1], 2), 32000, 48000), 48000, subtype="PCM_24")
    assert edge_main([str(int8_export.path), str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].split()[1] == "1.0"


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated: the data chunk needs"),
    ("stereo", "2 channels, expected mono"),
    ("empty", "no audio on standard input (empty stream)"),
    ("short stream", "the stream ended after 1,000 samples, before one whole clip"),
])
def test_bad_input_is_one_clear_line(int8_export, tmp_path, monkeypatch, capsys, case, message):
    args = [str(int8_export.path)]
    if case == "truncated":
        sf.write(str(tmp_path / "full.wav"), np.zeros(32000), 32000, subtype="PCM_16")
        data = (tmp_path / "full.wav").read_bytes()
        (tmp_path / "cut.wav").write_bytes(data[:len(data) // 2])
        args.append(str(tmp_path / "cut.wav"))
    elif case == "stereo":
        sf.write(str(tmp_path / "stereo.wav"), np.zeros((32000, 2)), 32000, subtype="PCM_16")
        args.append(str(tmp_path / "stereo.wav"))
    else:
        data = b"" if case == "empty" else b"\x01\x00" * 1000
        monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(data)})())
        args.append("-")
    assert edge_main(args) == 2  # bad input
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and message in captured.err


def test_not_a_bundle_is_one_line(tmp_path, capsys):
    assert edge_main([str(tmp_path), "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not an export bundle" in err and err.count("\n") == 1


def test_band_indices_are_the_platforms_index_type():
    """np.intp, not int64: 32-bit numpy refuses int64 repeat counts (tests/test_edge_i386.py runs it there)."""
    from asc_tf.edge.frontend import LogMel

    bands = LogMel().bands
    assert bands.first_bin.dtype == bands.n_bins.dtype == bands.offset.dtype == np.dtype(np.intp)


def test_a_front_end_that_fails_to_build_is_not_blamed_on_the_manifest(int8_export, monkeypatch):
    """Only a bad `frontend` section is reported as the manifest's fault; numpy's own error stays itself."""
    import asc_tf.edge.frontend as frontend

    def refuse(fb):
        raise TypeError("Cannot cast array data from dtype('int64') to dtype('int32') according to the rule 'safe'")

    monkeypatch.setattr(frontend.MelBands, "from_dense", staticmethod(refuse))
    with pytest.raises(TypeError, match="Cannot cast array data"):
        Classifier(int8_export.path)


@pytest.mark.parametrize("case", ["truncated", "empty"])
def test_conversion_and_edge_word_a_bad_wav_alike(tmp_path, case):
    """One wording for a truncated or empty WAV, whether the conversion (load_clip) or the edge runtime reads it."""
    from asc_tf.data.audio import AudioFileError, load_clip
    from asc_tf.edge.audio import read_clips
    from asc_tf.edge.errors import EdgeError

    path = tmp_path / f"{case}.wav"
    sf.write(str(path), np.zeros(44100 if case == "truncated" else 0), 44100, subtype="PCM_24")
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(AudioFileError) as conversion:
        load_clip(path, 44100, 32000)
    with pytest.raises(EdgeError) as edge:
        read_clips(path, 32000, 32000)
    assert str(conversion.value) == str(edge.value)
    assert str(edge.value).startswith(f"{path}: " + ("truncated: the data chunk needs" if case == "truncated"
                                                     else "empty: no samples"))


def test_firmware_clips_from_a_dataset_clip(tmp_path):
    """`python -m asc_tf.edge.audio IN --out DIR`: a 44.1 kHz 24-bit clip (1.5 s) becomes one 16-bit 32 kHz mono
    clip of 32,000 samples, the edge runtime's clip rounded to int16; the dropped half second is a warning; an
    existing clip is refused (exit 2) unless --overwrite."""
    from asc_tf.edge.audio import read_clips, to_pcm16

    rng = np.random.default_rng(0)
    source = tmp_path / "street-lyon-1-a.wav"
    sf.write(str(source), rng.uniform(-0.5, 0.5, 66150), 44100, subtype="PCM_24")
    command = [sys.executable, "-m", "asc_tf.edge.audio", str(source), "--out", str(tmp_path / "fw")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"1 clip(s) in {tmp_path / 'fw'}: street-lyon-1-a.wav"
    assert done.stderr.startswith("warning: ") and "were not classified" in done.stderr
    pcm, rate = sf.read(str(tmp_path / "fw" / "street-lyon-1-a.wav"), dtype="int16")
    info = sf.info(str(tmp_path / "fw" / "street-lyon-1-a.wav"))
    assert (rate, info.channels, info.subtype, pcm.shape) == (32000, 1, "PCM_16", (32000,))
    np.testing.assert_array_equal(pcm, to_pcm16(read_clips(source, 32000, 32000)[0]))
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "pass --overwrite" in again.stderr
    assert again.stderr.count("\n") == 1
    assert subprocess.run([*command, "--overwrite"], capture_output=True, env=env, timeout=300).returncode == 0


def test_garbage_network_with_its_hash_updated_is_one_line(int8_export, tmp_path, capsys):
    """A network file replaced by garbage together with its size and sha256 in the manifest passes the manifest's
    check; LiteRT's refusal is one line naming the file, exit code 2, not a traceback."""
    import hashlib
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(int8_export.path, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    network = bundle / manifest["files"]["network"]["path"]
    network.write_bytes(b"not a flatbuffer " * 64)
    manifest["files"]["network"].update(bytes=network.stat().st_size,
                                        sha256=hashlib.sha256(network.read_bytes()).hexdigest())
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    wav = tmp_path / "clip.wav"
    sf.write(str(wav), np.zeros(32000), 32000, subtype="PCM_16")
    assert edge_main([str(bundle), str(wav)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {network}: not a model LiteRT can load"), err


def test_a_rate_pair_without_common_divisor_is_refused_not_killed(tmp_path):
    """32000 -> 32001 Hz (e.g. an edited manifest's sample_rate) would design an 8 GB kernel and get the process
    killed; it is one error naming the file and the rates, from the edge runtime and from the data readers."""
    from asc_tf.data.audio import AudioFileError, load_any_clip
    from asc_tf.edge.audio import read_clips
    from asc_tf.edge.errors import EdgeError

    path = tmp_path / "clip.wav"
    sf.write(str(path), np.zeros(32000), 32000, subtype="PCM_16")
    with pytest.raises(EdgeError, match=f"^{path}: resampling 32000 Hz to 32001 Hz needs a 32,001 x"):
        read_clips(path, 32001, 32001)
    with pytest.raises(AudioFileError, match=f"^{path}: resampling 32000 Hz to 32001 Hz"):
        load_any_clip(path, 32001)
    assert read_clips(path, 44100, 44100)[0].shape == (44100,)  # a usual pair still resamples
