"""Build and run the project's firmware (`firmware/`, C/C++ over TFLite Micro) for the host or a Cortex-M
under QEMU, and read back what it prints: per-clip int8 logits, class, front-end and per-op time, memory.

The firmware is built by its Makefile (one description for every target); this module only calls `make`,
`qemu-system-arm` and parses the output and the linker map, so tests, bench/ and the export share one path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

FIRMWARE_SOURCE = Path(__file__).resolve().parents[2] / "firmware"  # the project's firmware/ (a checkout)
TARGETS = ("host", "cortex-m4", "cortex-m7", "cortex-m55")
KERNELS = ("cmsis_nn", "reference")
QEMU_MACHINES = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500", "cortex-m55": "mps3-an547"}
CLOCKS_MHZ = (168, 480)  # the parts the issue asks about: an STM32F4-class M4 and an STM32H7-class M7
SHIPPED = {"Makefile": "Makefile", "README.md": "BUILD.md", "src": "src", "platform": "platform"}  # -> bundle


class FirmwareError(RuntimeError):
    """The firmware did not build or run (the message carries the tool's last lines)."""


def default_tflm_dir() -> Optional[Path]:
    """$TFLM_DIR, else ../shared/third_party/tflm beside this checkout (the Makefile's own default)."""
    env = os.environ.get("TFLM_DIR")
    path = Path(env) if env else FIRMWARE_SOURCE.parent.parent / "shared" / "third_party" / "tflm"
    return path.resolve() if (path / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file() else None


def default_cmsis_dsp_dir() -> Optional[Path]:
    """$CMSIS_DSP_DIR, else ../shared/third_party/cmsis-dsp beside this checkout (the Makefile's own default)."""
    env = os.environ.get("CMSIS_DSP_DIR")
    path = Path(env) if env else FIRMWARE_SOURCE.parent.parent / "shared" / "third_party" / "cmsis-dsp"
    return path.resolve() if (path / "Include" / "arm_math.h").is_file() else None


def default_frontend(target: str) -> str:
    """The Makefile's FRONTEND per target: CMSIS-DSP on the Cortex-M55 (fewer instructions, measured), else own."""
    return "cmsis_dsp" if target == "cortex-m55" else "own"


def missing_tools(target: str, frontend: Optional[str] = None) -> Optional[str]:
    """Why `target` cannot be built and run here (a missing compiler, QEMU or TFLite Micro tree), else None."""
    if default_tflm_dir() is None:
        return "no TFLite Micro tree: set TFLM_DIR (see docs/firmware.md)"
    if (frontend or default_frontend(target)) == "cmsis_dsp" and default_cmsis_dsp_dir() is None:
        return "no CMSIS-DSP tree: set CMSIS_DSP_DIR (see docs/firmware.md)"
    need = ["make", "g++"] if target == "host" else ["make", "arm-none-eabi-g++", "qemu-system-arm"]
    absent = [tool for tool in need if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not installed (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi " \
               f"libstdc++-arm-none-eabi-newlib qemu-system-arm)"
    return None


def ship_sources(out_dir: Path, tflm_dir: Optional[Path] = None) -> list[str]:
    """Copy the firmware's sources beside an export's generated C files, with `config.mk` naming TFLM_DIR."""
    if not (FIRMWARE_SOURCE / "Makefile").is_file():
        return []
    names = []
    for name, target in SHIPPED.items():
        source = FIRMWARE_SOURCE / name
        if source.is_dir():
            shutil.copytree(source, out_dir / target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("build"))
            names += [str(p.relative_to(out_dir)) for p in sorted((out_dir / target).rglob("*")) if p.is_file()]
        elif source.is_file():
            shutil.copy2(source, out_dir / target)
            names.append(target)
    tflm = tflm_dir or default_tflm_dir()
    text = "# Written by export_tflite.py: where TFLite Micro and CMSIS-DSP were found at export (override: make " \
           "TFLM_DIR=... CMSIS_DSP_DIR=...)\n"
    text += f"TFLM_DIR ?= {tflm}\n" if tflm else "# TFLM_DIR was not found at export: pass it to make\n"
    dsp = default_cmsis_dsp_dir()
    text += f"CMSIS_DSP_DIR ?= {dsp}\n" if dsp else \
        "# CMSIS_DSP_DIR was not found at export: pass it to make for FRONTEND=cmsis_dsp (the Cortex-M55's default)\n"
    (out_dir / "config.mk").write_text(text)
    return sorted(names + ["config.mk"])


def build(model_dir: Path, target: str = "host", kernels: Optional[str] = None, build_dir: Optional[Path] = None,
          arena_bytes: Optional[int] = None, jobs: int = 2, source: Path = FIRMWARE_SOURCE,
          timeout: float = 1800, frontend: Optional[str] = None) -> Path:
    """`make` the firmware for `target` with the export's C files in `model_dir`; returns the image path.
    `frontend`: own or cmsis_dsp (default: the Makefile's choice for the target)."""
    kernels = kernels or ("reference" if target == "host" else "cmsis_nn")
    frontend = frontend or default_frontend(target)
    args = ["make", "-C", str(source), f"-j{jobs}", f"TARGET={target}", f"KERNELS={kernels}",
            f"MODEL_DIR={Path(model_dir).resolve()}", f"FRONTEND={frontend}"]
    if build_dir is not None:
        args.append(f"BUILD_DIR={Path(build_dir).resolve()}")
    if arena_bytes:
        args.append(f"ARENA_BYTES={int(arena_bytes)}")
    tflm, dsp = default_tflm_dir(), default_cmsis_dsp_dir()
    if tflm is not None and "TFLM_DIR" not in os.environ:
        args.append(f"TFLM_DIR={tflm}")
    if dsp is not None and "CMSIS_DSP_DIR" not in os.environ:
        args.append(f"CMSIS_DSP_DIR={dsp}")
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise FirmwareError(f"make TARGET={target} KERNELS={kernels} FRONTEND={frontend} failed:\n{tail}")
    path = subprocess.run(args[:3] + ["-s", "--no-print-directory"] + args[4:] + ["image-path"], capture_output=True, text=True, check=True)
    return Path(path.stdout.strip().splitlines()[-1])


@dataclass
class ClipResult:
    index: int
    path: str
    label: str
    logits: np.ndarray  # int8
    frontend: int  # ticks (host: ns)
    network: int
    ops: list[int]


@dataclass
class FirmwareRun:
    """What one run of the firmware printed."""

    target: str
    kernels: str
    timer: dict[str, str]
    op_shapes: list[str]
    clips: list[ClipResult]
    memory: dict[str, int]
    errors: list[str]
    returncode: int
    arena_search: Optional[int] = None
    extra: dict = field(default_factory=dict)
    frontend: str = "own"  # the front-end code built in: own or cmsis_dsp

    @property
    def instructions_per_tick(self) -> Optional[float]:
        """Instructions one timer tick spans (Cortex-M under QEMU -icount: a loop of known length)."""
        if "calibration_ticks" not in self.timer:
            return None
        return int(self.timer["calibration_instructions"]) / max(1, int(self.timer["calibration_ticks"]))


_CLIP = re.compile(r"^clip (\d+) (.*) class=(\S+) logits=(\S+) frontend=(\d+) network=(\d+) ops=(\S*)$")


def parse_output(stdout: str, stderr: str, returncode: int) -> FirmwareRun:
    """The firmware's lines -> FirmwareRun (raises FirmwareError when the banner is missing)."""
    lines = stdout.splitlines()
    head = next((l for l in lines if l.startswith("asc-fw ")), None)
    if head is None:
        raise FirmwareError(f"no firmware output (exit {returncode}): {stderr.strip()[-500:]}")
    info = dict(part.split("=", 1) for part in head.split()[1:])
    timer = dict(part.split("=", 1) for part in next(l for l in lines if l.startswith("timer ")).split()[1:])
    shapes, clips, memory, search, stages = [], [], {}, None, {}
    for line in lines:
        if line.startswith("op "):
            shapes.append(line.split(" ", 2)[2] if line.count(" ") >= 2 else "")
        elif line.startswith("clip "):
            m = _CLIP.match(line)
            if not m:
                raise FirmwareError(f"unreadable clip line: {line[:200]}")
            clips.append(ClipResult(int(m[1]), m[2], m[3], np.array([int(v) for v in m[4].split(",")], np.int8),
                                    int(m[5]), int(m[6]), [int(v) for v in m[7].split(",") if v]))
        elif line.startswith("memory "):
            for part in line.split()[1:]:
                key, value = part.split("=", 1)
                memory[key] = int(re.match(r"\d+", value)[0])
        elif line.startswith("frontend_stages "):
            parts = dict(p.split("=", 1) for p in line.split()[1:])
            n = max(1, int(parts.pop("clips")))
            stages = {name: int(value) / n for name, value in parts.items()}  # mean ticks per clip
        elif line.startswith("arena_search "):
            search = int(dict(p.split("=") for p in line.split()[1:])["smallest"])
    errors = [l for l in stderr.splitlines() if l.startswith("error:")]
    return FirmwareRun(info.get("target", "?"), info.get("kernels", "?"), timer, shapes, clips, memory, errors,
                       returncode, search, {"frontend_stages": stages} if stages else {}, info.get("frontend", "own"))


def run(image: Path, target: str, clips: Sequence[Path], dump_input: Optional[Path] = None,
        dump_mel: Optional[Path] = None, arena_search: bool = False, icount: bool = True,
        timeout: float = 1200) -> FirmwareRun:
    """Run the firmware on `clips` (host binary, or QEMU with semihosting; `-icount shift=0` so that virtual
    time counts instructions). The clip list goes through a file, so paths need no quoting."""
    with tempfile.TemporaryDirectory(prefix="asc_fw_") as tmp:
        listing = Path(tmp) / "clips.txt"
        listing.write_text("".join(f"{Path(c).resolve()}\n" for c in clips))
        args = ["--list", str(listing)]
        if dump_input:
            args += ["--dump-input", str(Path(dump_input).resolve())]
        if dump_mel:
            args += ["--dump-mel", str(Path(dump_mel).resolve())]
        if arena_search:
            args.append("--arena-search")
        if target == "host":
            command = [str(image)] + args
        else:
            semihosting = ",".join(["enable=on", "target=native", "arg=asc_fw"] +
                                   [f"arg={a.replace(',', ',,')}" for a in args])
            command = ["qemu-system-arm", "-M", QEMU_MACHINES[target], "-nographic", "-monitor", "none",
                       "-serial", "none", "-semihosting-config", semihosting, "-kernel", str(image)]
            if icount:
                command[1:1] = ["-icount", "shift=0"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FirmwareError(f"{target} firmware did not finish within {timeout:.0f} s") from None
    return parse_output(done.stdout, done.stderr, done.returncode)


_SECTION = re.compile(r"^(\.[\w.]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", re.M)


def memory_from_map(map_path: Path) -> dict[str, int]:
    """Flash and RAM of a Cortex-M image from its linker map: flash = code + constants (.text, .ARM.*) + the
    initial values of .data; RAM = .data + .bss (the tensor arena is in .bss) + heap + stack."""
    text = Path(map_path).read_text(errors="replace").split("Linker script and memory map", 1)[-1]
    sizes: dict[str, int] = {}
    for name, _, size in _SECTION.findall(text):
        if name in (".text", ".ARM.exidx", ".ARM.extab", ".data", ".bss", ".heap", ".stack"):
            sizes[name] = sizes.get(name, 0) + int(size, 16)
    constants = re.findall(r"^ \.rodata\.(asc_\w+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)", text, re.M)
    sizes["flash"] = sizes.get(".text", 0) + sizes.get(".ARM.exidx", 0) + sizes.get(".ARM.extab", 0) + \
        sizes.get(".data", 0)
    sizes["ram"] = sum(sizes.get(s, 0) for s in (".data", ".bss", ".heap", ".stack"))
    sizes["model_rodata"] = sum(int(n, 16) for name, n in constants if name == "asc_network_int8")
    sizes["frontend_rodata"] = sum(int(n, 16) for name, n in constants if name.startswith(("asc_fft", "asc_mel",
                                                                                           "asc_window")))
    return sizes


def write_clips(waveforms: Sequence[np.ndarray], out_dir: Path, sample_rate: int = 32000) -> list[Path]:
    """Float clips (full scale 1.0) as the 16-bit PCM WAV files the firmware reads."""
    from asc_tf.edge.audio import write_pcm16_wav

    paths = [out_dir / f"clip{i:04d}.wav" for i in range(len(waveforms))]
    for path, wave in zip(paths, waveforms):
        write_pcm16_wav(path, wave, sample_rate)
    return paths


def op_table(run_result: FirmwareRun, network: bytes) -> list[dict]:
    """Per op of the network, measured on the target: op, shapes, MACs (the audit's), instructions (mean over
    the clips, from the timer and its calibration), instructions per MAC."""
    from asc_tf.export.audit import audit_tflite

    rows = audit_tflite(network).rows
    scale = run_result.instructions_per_tick or 1.0
    ops = np.mean([c.ops for c in run_result.clips], axis=0) * scale
    table = []
    for row, shapes, instructions in zip(rows, run_result.op_shapes, ops):
        table.append({"op": row.op, "shapes": shapes, "macs": int(row.macs), "instructions": int(round(instructions)),
                      "instructions_per_mac": round(float(instructions) / row.macs, 3) if row.macs else None})
    return table


def measure(model_dir: Path, clips: Sequence[Path], network: bytes, target: str = "cortex-m4",
            kernels: Optional[str] = None, work_dir: Optional[Path] = None, smallest_arena: bool = True,
            source: Path = FIRMWARE_SOURCE, runs: Optional[dict] = None, frontend: Optional[str] = None) -> dict:
    """Build, find the smallest arena on the target, rebuild with it, run `clips` and return the figures:
    flash/RAM (linker map), arena, stack/heap high-water marks, instructions (Cortex-M: QEMU -icount) of the
    front end, the network and each op, and what a 168 / 480 MHz part needs per clip at one instruction a cycle.
    `runs`, when given, receives the FirmwareRun under (target, kernels, frontend) (its logits, for comparisons)."""
    kernels = kernels or ("reference" if target == "host" else "cmsis_nn")
    frontend = frontend or default_frontend(target)
    work = Path(work_dir or tempfile.mkdtemp(prefix="asc_fw_measure_"))
    name = f"{target}-{kernels}-{frontend}"
    image = build(model_dir, target, kernels, work / name, source=source, frontend=frontend)
    arena = None
    if smallest_arena:
        searched = run(image, target, clips[:1], arena_search=True)
        arena = searched.arena_search
        image = build(model_dir, target, kernels, work / f"{name}-arena", arena_bytes=arena, source=source,
                      frontend=frontend)
    result = run(image, target, clips)
    if result.returncode != 0 or len(result.clips) != len(clips):
        raise FirmwareError(f"{target}: the firmware failed on the clips: {result.errors[:3]}")
    if runs is not None:
        runs[(target, kernels, frontend)] = result
    scale = result.instructions_per_tick
    unit = "instructions" if scale else "ns"
    scale = scale or 1.0
    frontend_instructions = float(np.mean([c.frontend for c in result.clips])) * scale
    network_total = float(np.mean([c.network for c in result.clips])) * scale
    figures = {"target": target, "kernels": kernels, "frontend_code": frontend,
               "machine": QEMU_MACHINES.get(target, "host"),
               "clips": len(result.clips), "unit": unit,
               "frontend": int(round(frontend_instructions)), "network": int(round(network_total)),
               "frontend_share_of_network": round(frontend_instructions / network_total, 4),
               "frontend_stages": {name: int(round(ticks * scale))
                                   for name, ticks in result.extra.get("frontend_stages", {}).items()},
               "arena": result.memory, "smallest_arena": arena,
               "ops": op_table(result, network)}
    if target != "host":
        figures["memory"] = memory_from_map(image.with_suffix(".map"))
        figures["instructions_per_tick"] = round(result.instructions_per_tick or 0.0, 4)
        total = frontend_instructions + network_total
        figures["estimate_ms_per_clip"] = {f"{mhz}MHz": round(total / (mhz * 1e3), 2) for mhz in CLOCKS_MHZ}
    return figures


def record_in_manifest(bundle_dir: Path, record: dict) -> None:
    """Store measured firmware figures under the manifest's `firmware` key (atomic write)."""
    import json

    from asc_tf.io import atomic_write_json

    path = Path(bundle_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["firmware"] = record
    atomic_write_json(path, manifest)


def _machine() -> str:
    """The CPU that ran QEMU (instruction counts do not depend on it; times would)."""
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores"


def measure_export(bundle_dir: Path, network: bytes, shards_dir: Path, config, clips: int = 4) -> dict:
    """Cortex-M4 + CMSIS-NN figures of a written int8 bundle on `clips` dev-test clips, recorded in its manifest
    (or why they were not measured)."""
    from asc_tf.data.pipeline import make_dataset

    reason = missing_tools("cortex-m4")
    if reason:
        record = {"measured": None, "skipped": reason}
    else:
        waves = next(iter(make_dataset(shards_dir, "test", config, training=False, batch_size=clips)))[0].numpy()
        with tempfile.TemporaryDirectory(prefix="asc_fw_export_") as tmp:
            paths = write_clips(list(waves), Path(tmp) / "clips", config.sample_rate)
            figures = measure(Path(bundle_dir) / "firmware", paths, network, "cortex-m4", "cmsis_nn", Path(tmp))
        record = {"measured": "export_tflite.py --firmware_figures (QEMU -icount shift=0: instructions, not cycles)",
                  "machine": _machine(), "clips": len(paths), "figures": [figures]}
    record_in_manifest(bundle_dir, record)
    return record
