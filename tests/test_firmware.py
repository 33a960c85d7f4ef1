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
from int8_tolerances import INPUT_LOGIT_STEPS, INPUT_TIE_FRACTION, KERNEL_LOGIT_STEPS, tie_margin

N_CLIPS = 60  # >= 50 evaluation clips
log = logging.getLogger(__name__)


def _need(target: str, frontend: str | None = None) -> None:
    reason = fw.missing_tools(target, frontend)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def clips(synthetic_root, tmp_path_factory):
    """The first N_CLIPS evaluation clips, resampled to 32 kHz (the project's resampler) and stored as the
    firmware reads them, 16-bit PCM WAV; with the float waveform those int16 samples mean."""
    from asc_tf.data.synthetic import EVAL_DIR_NAME
    from asc_tf.edge.audio import firmware_clip_files

    out = tmp_path_factory.mktemp("fw_clips")
    sources = sorted((synthetic_root / EVAL_DIR_NAME / "audio").glob("*.wav"), key=lambda p: int(p.stem))[:N_CLIPS]
    assert len(sources) == N_CLIPS, f"the synthetic evaluation set has {len(sources)} clips, fewer than {N_CLIPS}"
    paths = firmware_clip_files(sources, out)  # what `python -m asc_tf.edge.audio SOURCES --out DIR` writes
    assert [p.name for p in paths] == [s.name for s in sources]
    waves = [sf.read(str(path), dtype="int16")[0].astype(np.float32) / np.float32(32768.0) for path in paths]
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
    """Two float32 front ends (C, own FFT; numpy/scipy, whose SIMD paths depend on the CPU) give log-mels a few
    float32 ulps apart, so their int8 quantization differs only where a value lies within those ulps of a rounding
    tie: never by more than one step, and on a tiny fraction of the values."""
    steps = np.abs(host_run[1].astype(int) - edge[2].astype(int))
    log.info("firmware vs edge int8 inputs: %d of %d values one step apart", int((steps > 0).sum()), steps.size)
    assert steps.max() <= 1
    assert (steps > 0).mean() <= INPUT_TIE_FRACTION, f"{(steps > 0).mean():.2e} of the int8 inputs differ"


def test_one_step_input_ties_move_logits_little(edge, int8_export):
    """INPUT_LOGIT_STEPS, derived on the network itself: in each clip, the values nearest a rounding tie (the ones
    another float32 front end may round the other way; twice INPUT_TIE_FRACTION of them) are moved one step across
    it, and the reference kernels' logits move by at most INPUT_LOGIT_STEPS."""
    from asc_tf.export.runtime import TFLiteModel

    classifier, mels, quantized, _ = edge
    reference = TFLiteModel(Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"],
                            reference_kernels=True)
    q = classifier.input_quantization
    per_clip = max(1, int(np.ceil(2 * INPUT_TIE_FRACTION * mels[0].size)))
    moved = []
    for mel, x in zip(mels, quantized):
        scaled = mel.astype(np.float64) / q.scale + q.zero_point
        nearest = np.argsort(np.abs(scaled - np.floor(scaled) - 0.5), axis=None)[:per_clip]
        flipped = x.copy().reshape(-1)
        rounded_up = flipped[nearest] > scaled.reshape(-1)[nearest]
        flipped[nearest] = np.clip(flipped[nearest].astype(int) + np.where(rounded_up, -1, 1), -128, 127)
        before = reference.run_raw(x.reshape(1, 256, 65, 1)).astype(int)
        after = reference.run_raw(flipped.reshape(1, 256, 65, 1)).astype(int)
        moved.append(int(np.abs(after - before).max()))
    log.info("%d values nearest a tie flipped per clip: logits moved %s steps (max %d)", per_clip,
             np.bincount(moved).tolist(), max(moved))
    assert max(moved) <= INPUT_LOGIT_STEPS


def test_host_logits_equal_litert_reference_kernels(host_run, int8_export):
    from asc_tf.export.runtime import TFLiteModel

    network = Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"]
    reference = TFLiteModel(network, reference_kernels=True)
    result, inputs = host_run[:2]
    for clip, x in zip(result.clips, inputs):
        expected = reference.run_raw(x.reshape(1, 256, 65, 1)).reshape(-1)
        np.testing.assert_array_equal(clip.logits, expected, err_msg=clip.path)


def test_host_class_matches_edge_runtime(host_run, edge, int8_export):
    """The firmware's class differs from the edge runtime's only on near-ties. Their int8 logits part in two
    places, each bounded on every clip: the inputs (a few one-step rounding ties, see above: the reference kernels on
    both inputs stay within INPUT_LOGIT_STEPS, and equal inputs give equal logits) and the kernels (the edge runtime's
    LiteRT/XNNPACK requantizes differently from the reference arithmetic the firmware reproduces bit for bit: within
    KERNEL_LOGIT_STEPS on the same input). With both bounds, a class can differ only where the top two logits are
    within tie_margin(...) steps (triangle inequality): the margins of the clips that differ are logged."""
    from asc_tf.export.runtime import TFLiteModel

    classifier, _, quantized, labels = edge
    result, inputs = host_run[:2]
    reference = TFLiteModel(Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"],
                            reference_kernels=True)
    differ, worst_input, worst_kernel = [], 0, 0
    for i, (clip, label) in enumerate(zip(result.clips, labels)):
        x = quantized[i].reshape(1, 256, 65, 1)
        firmware = clip.logits.astype(int)  # = the reference kernels on the firmware's own inputs (test above)
        edge_reference = reference.run_raw(x).reshape(-1).astype(int)
        edge_logits = classifier.network.run_raw(x).reshape(-1).astype(int)
        input_part = int(np.abs(firmware - edge_reference).max())
        kernel_part = int(np.abs(edge_reference - edge_logits).max())
        if np.array_equal(inputs[i], quantized[i]):
            assert input_part == 0, f"clip {i}: same int8 inputs, different reference logits"
        worst_input, worst_kernel = max(worst_input, input_part), max(worst_kernel, kernel_part)
        assert input_part <= INPUT_LOGIT_STEPS, f"clip {i}: inputs' rounding ties moved the logits {input_part} steps"
        assert kernel_part <= KERNEL_LOGIT_STEPS, f"clip {i}: LiteRT's kernels moved the logits {kernel_part} steps"
        if clip.label != label:
            ours, theirs = int(np.argmax(firmware)), int(np.argmax(edge_logits))
            differ.append((i, int(firmware[ours] - firmware[theirs]), tie_margin(input_part, kernel_part)))
    agree = 1.0 - len(differ) / len(labels)
    log.info("firmware vs edge runtime: same class on %.3f of %d clips (clip, firmware's margin, allowed: %s); "
             "logits apart by <= %d steps from the inputs, <= %d from the kernels", agree, len(labels), differ,
             worst_input, worst_kernel)
    assert agree >= 0.9, f"same class on {agree:.3f} of the clips: more than near-ties"


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


@pytest.fixture(scope="module")
def host_dsp_run(bundle_firmware, clips, tmp_path_factory):
    """The host build of the Cortex-M55's front-end code (FRONTEND=cmsis_dsp: CMSIS-DSP's rfft, magnitude, window
    multiply and dot products, its portable C paths)."""
    _need("host", "cmsis_dsp")
    work = tmp_path_factory.mktemp("fw_host_dsp")
    image = fw.build(bundle_firmware, "host", build_dir=work / "build", frontend="cmsis_dsp")
    result = fw.run(image, "host", clips[0], dump_input=work / "inputs.bin", dump_mel=work / "mel.bin")
    inputs = np.fromfile(work / "inputs.bin", np.int8).reshape(len(result.clips), 256, 65)
    mel = np.fromfile(work / "mel.bin", np.float32).reshape(len(result.clips), 256, 65)
    return result, inputs, mel


def test_host_cmsis_dsp_front_end_matches_edge_runtime(host_dsp_run, edge):
    """CMSIS-DSP's real FFT (another float32 FFT: its own twiddles and butterflies) within the tolerances of the
    project's front end: the same log-mel bound, and int8 inputs apart only at rounding ties (one step, on at most
    INPUT_TIE_FRACTION of the values)."""
    result, inputs, mel = host_dsp_run
    assert result.returncode == 0 and len(result.clips) == len(edge[1]) and result.frontend == "cmsis_dsp"
    diff = np.abs(mel - edge[1])
    steps = np.abs(inputs.astype(int) - edge[2].astype(int))
    log.info("cmsis_dsp log-mel vs edge: mean abs %.2e, max abs %.2e; %d int8 inputs one step apart", diff.mean(),
             diff.max(), int((steps > 0).sum()))
    assert diff.mean() <= 1e-3, f"mean abs {diff.mean():.3e} (max {diff.max():.3e})"
    assert steps.max() <= 1 and (steps > 0).mean() <= INPUT_TIE_FRACTION, f"{(steps > 0).mean():.2e} differ"


def test_host_cmsis_dsp_logits_equal_litert_reference_kernels(host_dsp_run, int8_export):
    from asc_tf.export.runtime import TFLiteModel

    reference = TFLiteModel(Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"],
                            reference_kernels=True)
    result, inputs, _ = host_dsp_run
    for clip, x in zip(result.clips, inputs):
        np.testing.assert_array_equal(clip.logits, reference.run_raw(x.reshape(1, 256, 65, 1)).reshape(-1),
                                      err_msg=clip.path)


def test_offline_plan_is_the_arena_tflite_micro_uses(host_run, clips, int8_export):
    """TFLite Micro follows the export's OfflineMemoryAllocation metadata: its planned (non-persistent) region is
    the plan's bytes (the kernels' scratch buffers fit its gaps), and the smallest arena that runs is <= 200,000 B
    on the 64-bit host, whose structures are larger than a Cortex-M's."""
    image = host_run[3]
    searched = fw.run(image, "host", clips[0][:1], arena_search=True)
    plan = int8_export.manifest["memory_plan"]
    assert searched.returncode == 0 and searched.memory["non_persistent"] == plan["planned_bytes"], searched.memory
    assert searched.arena_search <= 200_000 and searched.arena_search <= plan["firmware_arena"]["bytes"]
    log.info("host: smallest arena %d B (plan %d B)", searched.arena_search, plan["planned_bytes"])


def test_bad_clip_one_error_line_nonzero_exit(host_run, clips, tmp_path):
    image = host_run[3]
    for why, path in _bad_clips(clips, tmp_path).items():
        done = subprocess.run([str(image), str(path)], capture_output=True, text=True, timeout=60)
        errors = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(errors) == 1, (why, done.returncode, done.stderr)
        assert errors[0].startswith(f"error: {path}:") and why in errors[0], errors[0]
        assert "clip " not in done.stdout


def test_help_and_unknown_options(host_run):
    image = host_run[3]
    done = subprocess.run([str(image), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: asc_fw ") and "--arena-search" in done.stdout
    done = subprocess.run([str(image), "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == "error: unknown option --frobnicate (asc_fw --help lists them)"


@pytest.fixture(scope="module")
def m4_run(bundle_firmware, clips, tmp_path_factory):
    _need("cortex-m4")
    work = tmp_path_factory.mktemp("fw_m4")
    image = fw.build(bundle_firmware, "cortex-m4", "cmsis_nn", build_dir=work / "build")
    return fw.run(image, "cortex-m4", clips[0], dump_input=work / "inputs.bin"), work, image


def test_qemu_cortex_m4_cmsis_nn_logits_equal_host(m4_run, host_run):
    """Cortex-M4 + CMSIS-NN under QEMU computes what the host build computes: the same C front end (no FMA
    contraction on either) gives the same int8 inputs, and CMSIS-NN the reference kernels' int8 logits on them.
    The one part outside the project's code is the C library's logf (glibc picks an FMA or a plain variant by CPU,
    newlib has its own): where it rounds a log-mel value across a quantization tie, the inputs differ by one step
    there and the logits only as much as such a tie can move them; with equal inputs the logits are equal."""
    result, work, _ = m4_run
    assert result.returncode == 0 and not result.errors and len(result.clips) == len(host_run[0].clips)
    inputs = np.fromfile(work / "inputs.bin", np.int8).reshape(len(result.clips), 256, 65)
    steps = np.abs(inputs.astype(int) - host_run[1].astype(int))
    assert steps.max() <= 1 and (steps > 0).mean() <= INPUT_TIE_FRACTION, f"{(steps > 0).mean():.2e} differ"
    for i, (h, m) in enumerate(zip(host_run[0].clips, result.clips)):
        moved = int(np.abs(h.logits.astype(int) - m.logits.astype(int)).max())
        assert moved <= (0 if not steps[i].any() else INPUT_LOGIT_STEPS), f"{h.path}: logits {moved} steps apart"
    if steps.any():
        log.warning("cortex-m4 vs host: %d int8 inputs one step apart (the C libraries' logf)", int((steps > 0).sum()))


def test_qemu_bad_clip_exits_with_error(m4_run, clips, tmp_path):
    _, _, image = m4_run
    bad = _bad_clips(clips, tmp_path)["samples"]
    result = fw.run(image, "cortex-m4", [bad], timeout=120)
    assert result.returncode == 2 and len(result.errors) == 1 and not result.clips, result


def test_make_run_classifies_several_clips_under_qemu(m4_run, bundle_firmware, clips):
    """The README's `make run TARGET=cortex-m4 CLIPS="a.wav b.wav"`: one semihosting argument per clip (the
    Makefile once joined them with spaces, and QEMU could not open ",arg=b.wav")."""
    _, work, _ = m4_run
    chosen = [str(p) for p in clips[0][:2]]
    done = subprocess.run(["make", "-s", "-C", str(fw.FIRMWARE_SOURCE), "run", "TARGET=cortex-m4", "KERNELS=cmsis_nn",
                           f"MODEL_DIR={bundle_firmware.resolve()}", f"BUILD_DIR={(work / 'build').resolve()}",
                           f"CLIPS={' '.join(chosen)}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split()[2] for line in done.stdout.splitlines() if line.startswith("clip ")] == chosen


def test_cortex_m4_memory_from_the_linker_map(m4_run):
    _, _, image = m4_run
    sizes = fw.memory_from_map(image.with_suffix(".map"))
    assert sizes["model_rodata"] > 10_000 and sizes["flash"] > sizes["model_rodata"]
    assert sizes[".bss"] >= m4_run[0].memory["arena"]
    # the export's arena (the offline plan + TFLite Micro's structures) leaves a 256 kB part 31 kB for the
    # application: the image's RAM (arena, .data, .bss, 6 kB heap, 8 kB stack) within 225 kB
    assert sizes["ram"] <= 225 * 1024, sizes
    log.info("cortex-m4 cmsis_nn: %s", json.dumps(sizes))
