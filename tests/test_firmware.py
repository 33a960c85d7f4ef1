"""The firmware (firmware/, C/C++ over TFLite Micro) on the synthetic evaluation clips: the host build against
the numpy edge runtime and LiteRT's reference kernels, Cortex-M4 + CMSIS-NN under QEMU against the host build,
and bad clips. The builds reuse TFLite Micro compiled once into ~/.cache/asc_tf/tflm."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asc_tf.export import firmware_build as fw

N_CLIPS = 60  # >= 50 evaluation clips
log = logging.getLogger(__name__)


def _need(target: str) -> None:
    reason = fw.missing_tools(target)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def clips(synthetic_root, tmp_path_factory):
    """The first N_CLIPS evaluation clips, resampled to 32 kHz (the project's resampler) and stored as the
    firmware reads them, 16-bit PCM WAV; with the float waveform those int16 samples mean."""
    from asc_tf.data.synthetic import EVAL_DIR_NAME
    from asc_tf.edge.audio import read_clips

    out = tmp_path_factory.mktemp("fw_clips")
    sources = sorted((synthetic_root / EVAL_DIR_NAME / "audio").glob("*.wav"), key=lambda p: int(p.stem))[:N_CLIPS]
    assert len(sources) == N_CLIPS, f"the synthetic evaluation set has {len(sources)} clips, fewer than {N_CLIPS}"
    paths, waves = [], []
    for source in sources:
        clip = read_clips(source, 32000, 32000)[0]
        pcm = np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)
        path = out / f"{source.stem}.wav"
        sf.write(str(path), pcm, 32000, subtype="PCM_16", format="WAV")
        paths.append(path)
        waves.append(pcm.astype(np.float32) / np.float32(32768.0))
    return paths, np.stack(waves), sources


@pytest.fixture(scope="module")
def bundle_firmware(int8_export) -> Path:
    return Path(int8_export.path) / "firmware"


@pytest.fixture(scope="module")
def host_run(bundle_firmware, clips, tmp_path_factory):
    _need("host")
    work = tmp_path_factory.mktemp("fw_host")
    image = fw.build(bundle_firmware, "host", build_dir=work / "build")
    result = fw.run(image, "host", clips[0], dump_input=work / "inputs.bin", dump_mel=work / "mel.bin")
    inputs = np.fromfile(work / "inputs.bin", np.int8).reshape(len(result.clips), 256, 65)
    mel = np.fromfile(work / "mel.bin", np.float32).reshape(len(result.clips), 256, 65)
    return result, inputs, mel, image


@pytest.fixture(scope="module")
def edge(int8_export, clips):
    """The numpy edge runtime on the same 16-bit clips: log-mel, its int8 quantization, classes."""
    from asc_tf.edge.classifier import Classifier

    classifier = Classifier(int8_export.path)
    mels = np.stack([classifier.log_mel(w) for w in clips[1]])
    quantized = classifier.input_quantization.quantize(mels)
    labels = [classifier.classes[int(np.argmax(classifier.network_logits(m)))] for m in mels]
    return classifier, mels, quantized, labels


def test_host_firmware_runs_every_clip(host_run, clips):
    result = host_run[0]
    assert result.returncode == 0 and not result.errors
    assert [Path(c.path).name for c in result.clips] == [p.name for p in clips[0]]
    assert all(len(c.ops) == len(result.op_shapes) and c.frontend > 0 for c in result.clips)


def test_host_log_mel_matches_edge_runtime(host_run, edge):
    diff = np.abs(host_run[2] - edge[1])
    log.info("firmware log-mel vs edge: mean abs %.2e, max abs %.2e", diff.mean(), diff.max())
    assert diff.mean() <= 1e-3, f"mean abs {diff.mean():.3e} (max {diff.max():.3e})"


def test_host_int8_inputs_match_edge_runtime(host_run, edge):
    equal = float(np.mean(host_run[1] == edge[2]))
    assert equal >= 0.999, f"{equal:.5f} of the int8 inputs equal"
    assert np.max(np.abs(host_run[1].astype(int) - edge[2].astype(int))) <= 1


def test_host_logits_equal_litert_reference_kernels(host_run, int8_export):
    from asc_tf.export.runtime import TFLiteModel

    network = Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"]
    reference = TFLiteModel(network, reference_kernels=True)
    result, inputs = host_run[:2]
    for clip, x in zip(result.clips, inputs):
        expected = reference.run_raw(x.reshape(1, 256, 65, 1)).reshape(-1)
        np.testing.assert_array_equal(clip.logits, expected, err_msg=clip.path)


def test_host_class_matches_edge_runtime(host_run, edge, int8_export):
    """Same class as the edge runtime on >= 99 % of the clips, except where the edge runtime's own LiteRT
    kernels (XNNPACK) round differently from the reference arithmetic that the firmware reproduces bit for bit:
    every disagreement must be such a clip (the firmware's int8 inputs equal the edge runtime's there)."""
    from asc_tf.export.runtime import TFLiteModel

    classifier, _, quantized, labels = edge
    result, inputs = host_run[:2]
    reference = TFLiteModel(Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"],
                            reference_kernels=True)
    differ = [i for i, (c, e) in enumerate(zip(result.clips, labels)) if c.label != e]
    agree = 1.0 - len(differ) / len(labels)
    log.info("firmware vs edge runtime: same class on %.3f of %d clips (%s differ)", agree, len(labels), differ)
    for i in differ:
        assert np.array_equal(inputs[i], quantized[i]), f"clip {i}: the int8 inputs differ"
        x = quantized[i].reshape(1, 256, 65, 1)
        edge_logits = classifier.network.run_raw(x).reshape(-1)
        reference_logits = reference.run_raw(x).reshape(-1)
        assert not np.array_equal(edge_logits, reference_logits), f"clip {i}: disagreement not from LiteRT rounding"
        np.testing.assert_array_equal(result.clips[i].logits, reference_logits)
    if agree < 0.99:
        log.warning("same class as the edge runtime on %.3f < 0.99: LiteRT's XNNPACK rounding on %d near-tie clips",
                    agree, len(differ))


def _bad_clips(clips, tmp_path) -> dict[str, Path]:
    pcm = (clips[1][0] * 32768).astype(np.int16)
    short = tmp_path / "short.wav"
    sf.write(str(short), pcm[:31000], 32000, subtype="PCM_16", format="WAV")
    stereo = tmp_path / "stereo.wav"
    sf.write(str(stereo), np.stack([pcm, pcm], 1), 32000, subtype="PCM_16", format="WAV")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not a wav file at all" * 10)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(clips[0][0].read_bytes()[:30000])
    return {"24-bit": clips[2][0], "samples": short, "channels": stereo, "RIFF": garbage, "truncated": truncated}


def test_bad_clip_one_error_line_nonzero_exit(host_run, clips, tmp_path):
    image = host_run[3]
    for why, path in _bad_clips(clips, tmp_path).items():
        done = subprocess.run([str(image), str(path)], capture_output=True, text=True, timeout=60)
        errors = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(errors) == 1, (why, done.returncode, done.stderr)
        assert errors[0].startswith(f"error: {path}:") and why in errors[0], errors[0]
        assert "clip " not in done.stdout


@pytest.fixture(scope="module")
def m4_run(bundle_firmware, clips, tmp_path_factory):
    _need("cortex-m4")
    work = tmp_path_factory.mktemp("fw_m4")
    image = fw.build(bundle_firmware, "cortex-m4", "cmsis_nn", build_dir=work / "build")
    return fw.run(image, "cortex-m4", clips[0], dump_input=work / "inputs.bin"), work, image


def test_qemu_cortex_m4_cmsis_nn_logits_equal_host(m4_run, host_run):
    result, work, _ = m4_run
    assert result.returncode == 0 and not result.errors and len(result.clips) == len(host_run[0].clips)
    inputs = np.fromfile(work / "inputs.bin", np.int8).reshape(len(result.clips), 256, 65)
    input_equal = float(np.mean(inputs == host_run[1]))
    differ = [h.path for h, m in zip(host_run[0].clips, result.clips) if not np.array_equal(h.logits, m.logits)]
    assert not differ, f"{len(differ)} clips' logits differ (int8 inputs equal on {input_equal:.5f}): {differ[:3]}"
    assert input_equal == 1.0


def test_qemu_bad_clip_exits_with_error(m4_run, clips, tmp_path):
    _, _, image = m4_run
    bad = _bad_clips(clips, tmp_path)["samples"]
    result = fw.run(image, "cortex-m4", [bad], timeout=120)
    assert result.returncode == 2 and len(result.errors) == 1 and not result.clips, result


def test_cortex_m4_memory_from_the_linker_map(m4_run):
    _, _, image = m4_run
    sizes = fw.memory_from_map(image.with_suffix(".map"))
    assert sizes["model_rodata"] > 10_000 and sizes["flash"] > sizes["model_rodata"]
    assert sizes[".bss"] >= m4_run[0].memory["arena"]
    # the export's arena (measured by tflite-micro, else the default) keeps the image within 256 kB of SRAM
    assert sizes["ram"] <= 256 * 1024, sizes
    log.info("cortex-m4 cmsis_nn: %s", json.dumps(sizes))
