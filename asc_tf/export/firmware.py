"""Microcontroller firmware files: the int8 network as an aligned C byte array, and the front end's window and
mel matrix as C arrays, with the exact recipe a firmware must compute before the network.

TFLite Micro has no RFFT2D kernel, so on a microcontroller the front end runs outside the model, with the
firmware's own FFT. The mel matrix is shipped sparse (each band's contiguous run of non-zero weights):
dense it would be 2049 x 256 floats (2 MB) and 34 M MACs per clip, more than the whole network; banded it is
18,316 bytes (256 x (2 + 2 + 4) index bytes + 4,067 float weights) and 264 k MACs per clip.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import numpy as np

from asc_tf.config import Config
from asc_tf.export.audit import audit_tflite
from asc_tf.io import atomic_write_text
from asc_tf.edge.mel import MelBands, mel_filterbank, periodic_hann
from asc_tf.model.frontend import LOG_OFFSET

log = logging.getLogger(__name__)

MODEL_ALIGNMENT = 16  # TFLM requires the flatbuffer 16-byte aligned
# When the export could not measure the arena (tflite-micro not installed): the baseline's smallest measured arena
# (229,024 B on the 64-bit host build, 226,592 B on Cortex-M) plus ~3 %, so that a Cortex-M image stays within 256 kB
# of RAM (arena + 16.8 kB of data, heap and stack). A larger network fails at start-up naming the arena: pass
# `make ARENA_BYTES=` (its smallest: `asc_fw --arena-search`, or tflite-micro at export).
DEFAULT_ARENA = 230 * 1024
# With an offline memory plan (asc_tf.export.memory_plan) the arena is the plan's bytes plus TFLite Micro's own
# structures: 15,636 B on Cortex-M, 18,080 B on the 64-bit host for the baseline (measured by --arena-search; the
# kernels' scratch buffers fitted the plan's gaps). 20 KiB covers both with ~2 kB to spare.
TFLM_STRUCTURES = 20 * 1024


def export_arena(measured: Optional[int], planned_bytes: Optional[int]) -> tuple[int, str]:
    """The arena a firmware build uses by default, and where it comes from: tflite-micro's measurement at export,
    else the offline plan's bytes + TFLM_STRUCTURES, else DEFAULT_ARENA."""
    if measured:
        return measured, "the smallest that ran under tflite-micro at export"
    if planned_bytes:
        return planned_bytes + TFLM_STRUCTURES, f"the offline plan's {planned_bytes:,} B + {TFLM_STRUCTURES:,} B " \
            "for TFLite Micro's structures"
    return DEFAULT_ARENA, "not measured at export: the unplanned baseline's smallest + 3 %"

_ALIGN_MACRO = """#if defined(_MSC_VER)
#define ASC_ALIGNED(n) __declspec(align(n))
#else
#define ASC_ALIGNED(n) __attribute__((aligned(n)))
#endif"""


def frontend_arrays(config: Config) -> tuple[np.ndarray, MelBands]:
    """(periodic Hann window [window_length], banded mel filterbank) of the model's front end."""
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
    return periodic_hann(config.window_length), MelBands.from_dense(fb)


def reference_log_mel(waveform: np.ndarray, config: Config) -> np.ndarray:
    """The firmware recipe in numpy, from the shipped arrays: waveform `[samples]` -> log-mel `[n_mels, frames]`."""
    window, mel = frontend_arrays(config)
    half = config.n_fft // 2
    padded = np.pad(np.asarray(waveform, np.float32), half, mode="reflect")
    start = (config.n_fft - config.window_length) // 2
    n_frames = 1 + len(waveform) // config.hop_length
    frames = np.stack([padded[start + t * config.hop_length: start + t * config.hop_length + config.window_length]
                       for t in range(n_frames)]) * window
    spectrum = np.fft.rfft(frames, n=config.n_fft)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return np.log(mel.apply(power) + np.float32(LOG_OFFSET)).T


def kiss_factors(n: int) -> list[int]:
    """kissfft's `kf_factor`: radices 4, 2, 3, 5, ... as (p, n/p) pairs, the plan its FFT follows."""
    factors, p, floor_sqrt = [], 4, math.floor(math.sqrt(n))
    while True:
        while n % p:
            p = {4: 2, 2: 3}.get(p, p + 2)
            if p > floor_sqrt:
                p = n
        n //= p
        factors += [p, n]
        if n <= 1:
            return factors


def fft_tables(n_fft: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """kissfft's real-FFT state for `n_fft` points as kiss_fftr_alloc computes it (float64 cos/sin, then float32):
    factors and twiddles of the complex FFT of n_fft/2 points, and the real FFT's super-twiddles.

    Shipped as constants so the firmware keeps them in flash (24 kB less RAM) and every target uses the same ones.
    """
    half = n_fft // 2
    phase = -2.0 * np.pi * np.arange(half) / half
    twiddles = np.stack([np.cos(phase), np.sin(phase)], axis=1).astype(np.float32)
    phase = -np.pi * ((np.arange(half // 2) + 1) / half + 0.5)
    supers = np.stack([np.cos(phase), np.sin(phase)], axis=1).astype(np.float32)
    return kiss_factors(half), twiddles, supers


def _c_float(value: float) -> str:
    text = f"{float(value):.9g}"
    if not any(c in text for c in ".en"):
        text += ".0"
    return text + "f"


def _c_array(values: list[str], per_line: int) -> str:
    return ",\n".join("  " + ", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line))


def resolver_method(op: str) -> str:
    """TFLite Micro's `MicroMutableOpResolver` method of a builtin op: CONV_2D -> AddConv2D."""
    return "Add" + "".join(part if part[:1].isdigit() else part.capitalize() for part in op.split("_"))


def network_c_files(model: bytes, name: str = "asc_network_int8", ops: Optional[list[str]] = None,
                    arena: Optional[tuple[int, str]] = None) -> dict[str, str]:
    """`{name}.h` and `{name}.c`: the int8 `.tflite` as a 16-byte aligned `const unsigned char` array, the
    network's op kinds (for an op resolver with exactly these) and the tensor arena (bytes, where it comes from)."""
    ops = sorted(set(ops)) if ops is not None else sorted(set(r.op for r in audit_tflite(model).rows))
    op_list = " ".join(f"X({resolver_method(op)})" for op in ops)
    arena_bytes, arena_how = arena or export_arena(None, None)
    arena = f"{arena_bytes}  /* {arena_how} */"
    header = f"""/* Generated by asc-tf export_tflite.py: the int8 CP-Mobile network (TFLite flatbuffer) for TFLite Micro. */
#ifndef {name.upper()}_H_
#define {name.upper()}_H_

{_ALIGN_MACRO}

#ifdef __cplusplus
extern "C" {{
#endif

/* The network's builtin ops ({", ".join(ops)}): X(method of MicroMutableOpResolver) */
#define ASC_N_OP_KINDS {len(ops)}
#define ASC_OPS(X) {op_list}
/* Tensor arena (bytes); a firmware may override it (make ARENA_BYTES=; asc_fw --arena-search finds the smallest). */
#define ASC_EXPORT_ARENA_BYTES {arena}

extern const unsigned char {name}[];  /* {MODEL_ALIGNMENT}-byte aligned */
extern const unsigned int {name}_len;  /* {len(model)} */

#ifdef __cplusplus
}}
#endif

#endif  /* {name.upper()}_H_ */
"""
    body = _c_array([f"0x{b:02x}" for b in model], 12)
    source = f"""/* Generated by asc-tf export_tflite.py. */
#include "{name}.h"

ASC_ALIGNED({MODEL_ALIGNMENT}) const unsigned char {name}[] = {{
{body}
}};
const unsigned int {name}_len = {len(model)};
"""
    return {f"{name}.h": header, f"{name}.c": source}


def frontend_c_files(config: Config, input_scale: float, input_zero_point: int, output_scale: float,
                     output_zero_point: int, classes: list[str], name: str = "asc_frontend") -> dict[str, str]:
    """`{name}.h` / `{name}.c`: window, sparse mel matrix, sizes and the quantization of the network's input/output."""
    window, mel = frontend_arrays(config)
    factors, twiddles, supers = fft_tables(config.n_fft)
    frames = 1 + config.sample_rate // config.hop_length
    class_list = ", ".join(f'"{c}"' for c in classes)
    header = f"""/* Generated by asc-tf export_tflite.py: constants of the front end a firmware computes before the int8
 * network (see README.md beside this file). Log-mel layout: input[mel * ASC_N_FRAMES + frame]. */
#ifndef {name.upper()}_H_
#define {name.upper()}_H_

#include <stdint.h>

#define ASC_SAMPLE_RATE {config.sample_rate}
#define ASC_CLIP_SAMPLES {config.sample_rate}
#define ASC_N_FFT {config.n_fft}
#define ASC_WINDOW_LENGTH {config.window_length}
#define ASC_WINDOW_OFFSET {(config.n_fft - config.window_length) // 2}
#define ASC_HOP_LENGTH {config.hop_length}
#define ASC_N_BINS {config.n_fft // 2 + 1}
#define ASC_N_MELS {config.n_mels}
#define ASC_N_FRAMES {frames}
#define ASC_MEL_N_WEIGHTS {len(mel.weights)}  /* mel arrays: {mel.nbytes():,} bytes */
#define ASC_LOG_OFFSET {_c_float(LOG_OFFSET)}
#define ASC_INPUT_SCALE {_c_float(input_scale)}
#define ASC_INPUT_ZERO_POINT ({int(input_zero_point)})
#define ASC_OUTPUT_SCALE {_c_float(output_scale)}
#define ASC_OUTPUT_ZERO_POINT ({int(output_zero_point)})
#define ASC_N_CLASSES {len(classes)}

#ifdef __cplusplus
extern "C" {{
#endif

extern const float asc_window[ASC_WINDOW_LENGTH];         /* periodic Hann */
extern const uint16_t asc_mel_first_bin[ASC_N_MELS];      /* first FFT bin of each mel band */
extern const uint16_t asc_mel_n_bins[ASC_N_MELS];         /* number of bins of each band */
extern const uint32_t asc_mel_offset[ASC_N_MELS];         /* start of each band in asc_mel_weights */
extern const float asc_mel_weights[ASC_MEL_N_WEIGHTS];
extern const char *const asc_class_names[ASC_N_CLASSES];

/* kissfft's state of the complex FFT of ASC_N_FFT / 2 points (the layout of its struct kiss_fft_state), and the
 * real FFT's super-twiddles: constants, so they stay in flash. */
typedef struct {{
  int nfft;
  int inverse;
  int factors[64];
  float twiddles[ASC_N_FFT / 2][2];
}} asc_kiss_state_t;
extern const asc_kiss_state_t asc_fft_state;
extern const float asc_fft_super_twiddles[ASC_N_FFT / 4][2];

#ifdef __cplusplus
}}
#endif

#endif  /* {name.upper()}_H_ */
"""
    source = f"""/* Generated by asc-tf export_tflite.py. */
#include "{name}.h"

const float asc_window[ASC_WINDOW_LENGTH] = {{
{_c_array([_c_float(v) for v in window], 8)}
}};
const uint16_t asc_mel_first_bin[ASC_N_MELS] = {{
{_c_array([str(int(v)) for v in mel.first_bin], 16)}
}};
const uint16_t asc_mel_n_bins[ASC_N_MELS] = {{
{_c_array([str(int(v)) for v in mel.n_bins], 16)}
}};
const uint32_t asc_mel_offset[ASC_N_MELS] = {{
{_c_array([f"{int(v)}u" for v in mel.offset], 12)}
}};
const float asc_mel_weights[ASC_MEL_N_WEIGHTS] = {{
{_c_array([_c_float(v) for v in mel.weights], 8)}
}};
const char *const asc_class_names[ASC_N_CLASSES] = {{{class_list}}};
const asc_kiss_state_t asc_fft_state = {{
  {config.n_fft // 2}, 0,
  {{{", ".join(str(f) for f in factors)}}},
  {{
{_c_array(["{" + _c_float(a) + ", " + _c_float(b) + "}" for a, b in twiddles], 4)}
  }}
}};
const float asc_fft_super_twiddles[ASC_N_FFT / 4][2] = {{
{_c_array(["{" + _c_float(a) + ", " + _c_float(b) + "}" for a, b in supers], 4)}
}};
"""
    return {f"{name}.h": header, f"{name}.c": source}


def firmware_readme(config: Config, input_scale: float, input_zero_point: int, output_scale: float,
                    output_zero_point: int, arena: tuple[int, str]) -> str:
    """What a firmware computes before (and after) the int8 network, with this export's numbers."""
    frames = 1 + config.sample_rate // config.hop_length
    half = config.n_fft // 2
    offset = (config.n_fft - config.window_length) // 2
    window, mel = frontend_arrays(config)
    arena = f"{arena[0]:,} bytes ({arena[1]})"
    return f"""# Firmware front end

The int8 network (`asc_network_int8.c`) takes a log-mel `[1, {config.n_mels}, {frames}, 1]` int8 tensor.
TFLite Micro has no RFFT2D kernel, so the firmware computes it, for one clip of {config.sample_rate} samples
at {config.sample_rate} Hz (mono float, full scale = 1.0; audio recorded at another rate must be resampled
as the training data was):

1. Pad: reflect {half} samples on each side (`x[-i] = x[i]`, `x[N-1+i] = x[N-1-i]`), {config.sample_rate + 2 * half} samples.
2. Frames t = 0..{frames - 1}: `ASC_WINDOW_LENGTH` = {config.window_length} samples starting at padded index
   `{offset} + {config.hop_length} * t`, multiplied by `asc_window` (periodic Hann, {config.window_length}).
3. FFT: zero-pad each frame at the end to {config.n_fft} points, real FFT, power `re^2 + im^2` of bins
   0..{half} ({half + 1} bins).
4. Mel: band m = sum over k < `asc_mel_n_bins[m]` of
   `power[asc_mel_first_bin[m] + k] * asc_mel_weights[asc_mel_offset[m] + k]` ({config.n_mels} bands, HTK scale,
   {config.f_min} Hz to {config.f_max or config.sample_rate // 2} Hz, no normalisation): {len(mel.weights):,} MACs per
   frame, {len(mel.weights) * frames:,} per clip (a dense matrix would take {(half + 1) * config.n_mels * frames:,}).
5. Log: `logf(mel + {LOG_OFFSET})` (natural log).
6. Quantize: `q = roundf(v / {input_scale!r}) + ({input_zero_point})`, clamped to [-128, 127], stored at
   `input[m * {frames} + t]` (mel-major: shape [1, {config.n_mels}, {frames}, 1]).

After `Invoke()`, the output is 10 int8 logits: `logit = {output_scale!r} * (q - ({output_zero_point}))`; the
class is the argmax (`asc_class_names`), softmax gives probabilities. Tensor arena: {arena}.

Constant memory of the front end: mel arrays {mel.nbytes():,} bytes (`asc_mel_first_bin`, `asc_mel_n_bins`,
`asc_mel_offset`, `asc_mel_weights`; dense it would be {4 * (half + 1) * config.n_mels:,} bytes), window
{window.nbytes:,} bytes.
All constants are in `asc_frontend.h`; `asc_tf.export.firmware.reference_log_mel` is this recipe in numpy.

## Build

This folder also holds the project's firmware (`Makefile`, `src/`, `platform/`; see `BUILD.md`), which computes
the recipe above streamed, in C, and runs the network under TensorFlow Lite Micro (`TFLM_DIR`, see `config.mk`;
the network file carries TFLite Micro's offline memory plan in its `OfflineMemoryAllocation` metadata):

    make TARGET=host                # or cortex-m4 | cortex-m7 | cortex-m55 (arm-none-eabi-gcc); KERNELS=reference
    make TARGET=cortex-m55          # FRONTEND=cmsis_dsp there by default: CMSIS-DSP from CMSIS_DSP_DIR
    make run TARGET=cortex-m4 CLIPS="a.wav b.wav"   # under qemu-system-arm (16-bit PCM mono 32 kHz WAV clips)

Such clips from dataset clips (any rate, mono): `python -m asc_tf.edge.audio IN.wav... --out DIR` (asc-tf).
"""


def write_firmware(out_dir: Path, model: bytes, config: Config, input_q: tuple[float, int],
                   output_q: tuple[float, int], classes: list[str], arena: tuple[int, str]) -> list[str]:
    """Write the C files, README and (from a checkout) the project's firmware sources into `out_dir` (atomic
    writes), so that `make -C out_dir TARGET=cortex-m4` builds this export; returns the file names."""
    from asc_tf.export.firmware_build import ship_sources

    files = {**network_c_files(model, arena=arena),
             **frontend_c_files(config, *input_q, *output_q, classes),
             "README.md": firmware_readme(config, *input_q, *output_q, arena)}
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
    shipped = ship_sources(out_dir)
    if not shipped:
        log.warning("firmware: the project's firmware/ sources were not found: only the C arrays were written")
    _, mel = frontend_arrays(config)
    log.info("firmware: mel arrays %d bytes (%d bands, %d weights)", mel.nbytes(), mel.n_mels, len(mel.weights))
    return sorted(set(files) | set(shipped))
