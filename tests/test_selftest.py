"""`python -m asc_tf.edge --selftest BUNDLE`: one line, exit 0 when the device computes what was exported; exit 2
naming what failed (a changed file, a wrong result as under qemu's `max` CPU, a bundle without the recorded output)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from asc_tf.edge import Classifier
from asc_tf.edge.__main__ import main as edge_main
from asc_tf.edge.selftest import INT8_STEPS, cpu_features, known_clip
from int8_tolerances import INPUT_LOGIT_STEPS, KERNEL_LOGIT_STEPS


def _copy(export, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(export.path, target)
    return target


def _one_line(capsys, stream: str) -> str:
    captured = capsys.readouterr()
    text = getattr(captured, stream)
    assert text.count("\n") == 1 and (captured.out if stream == "err" else captured.err) == "", captured
    return text


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_selftest_passes_on_the_exported_bundle(int8_export, fp16_export, precision, capsys):
    export = int8_export if precision == "int8" else fp16_export
    section = export.manifest["selftest"]
    assert len(section["logits"]) == 10 and section["class"] in export.manifest["classes"]
    if precision == "int8":
        assert INT8_STEPS == INPUT_LOGIT_STEPS + KERNEL_LOGIT_STEPS  # one figure, one meaning (tests/int8_tolerances)
        assert section["tolerance"] == pytest.approx(INT8_STEPS * export.manifest["outputs"]["network"]["scale"])
    assert edge_main(["--selftest", str(export.path)]) == 0
    line = _one_line(capsys, "out")
    assert line.startswith("selftest passed: ") and f"known clip: {section['class']}" in line
    assert "files match manifest.json" in line


def test_a_changed_model_file_fails(int8_export, tmp_path, capsys):
    bundle = _copy(int8_export, tmp_path)
    fp16 = bundle / "end_to_end_fp16.tflite"
    data = bytearray(fp16.read_bytes())
    data[len(data) // 2] ^= 0xFF
    fp16.write_bytes(bytes(data))
    assert edge_main(["--selftest", str(bundle)]) == 2
    line = _one_line(capsys, "err")
    assert line.startswith("error: selftest: ") and "end_to_end_fp16.tflite: missing or changed since export" in line


def test_a_wrong_result_fails(int8_export, monkeypatch, capsys):
    """As under qemu's `max` CPU model: the network runs, no error, another class. Simulated by shifting the logits
    the network returns by one class."""
    original = Classifier.network_logits
    monkeypatch.setattr(Classifier, "network_logits", lambda self, log_mel: np.roll(original(self, log_mel), 1))
    assert edge_main(["--selftest", str(int8_export.path)]) == 2
    line = _one_line(capsys, "err")
    assert "the known clip gives" in line and f"the export recorded {int8_export.manifest['selftest']['class']}" in line


def test_logits_moved_beyond_the_tolerance_fail(int8_export, tmp_path, capsys):
    bundle = _copy(int8_export, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    step = manifest["outputs"]["network"]["scale"]
    manifest["selftest"]["logits"] = [v + (INT8_STEPS + 1) * step for v in manifest["selftest"]["logits"]]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert edge_main(["--selftest", str(bundle)]) == 2
    assert "from the export's, at most" in _one_line(capsys, "err")
    manifest["selftest"]["logits"] = [v - 2 * step for v in manifest["selftest"]["logits"]]  # 5 steps away: passes
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert edge_main(["--selftest", str(bundle)]) == 0


def test_a_bundle_without_the_recorded_output_says_export_again(int8_export, tmp_path, capsys):
    bundle = _copy(int8_export, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["selftest"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert edge_main(["--selftest", str(bundle)]) == 2
    assert "records no known-clip output" in _one_line(capsys, "err")


def test_known_clip_is_deterministic_noise_and_tones():
    clip = known_clip(32000, 32000)
    assert clip.dtype == np.float32 and clip.shape == (32000,)
    np.testing.assert_array_equal(clip, known_clip(32000, 32000))
    assert 0.05 < float(np.std(clip)) < 0.2 and float(np.max(np.abs(clip))) < 0.3
    spectrum = np.abs(np.fft.rfft(clip))
    assert set(np.argsort(spectrum)[-2:]) == {440, 3000}  # the two tones stand out of the noise (1 Hz bins)


def test_cpu_features_are_read_from_cpuinfo(tmp_path):
    arm = tmp_path / "cpuinfo"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid asimdhp asimddp\n")
    assert cpu_features(arm)[1] == ["asimd", "asimdhp", "asimddp"]
    assert cpu_features(tmp_path / "missing")[1] is None
