"""The int8 network compiled by Arm's Vela for the Ethos-U NPUs, with Vela's own estimates (cycles, SRAM, flash or
DRAM per configuration) and the operators left to the CPU. Vela runs in its own venv (requirements-vela.txt) made
once under ~/.cache/asc_tf, or in the python named by $ASC_TF_VELA_PYTHON.

The figures are Vela's performance estimates for its default system configurations in Arm/vela.ini, not
measurements: nothing here runs an NPU.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asc_tf.export.venv import VenvError, cached_venv

log = logging.getLogger(__name__)

PYTHON_ENV = "ASC_TF_VELA_PYTHON"
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-vela.txt"


@dataclass(frozen=True)
class NpuConfig:
    """One Vela target: the accelerator and the system configuration / memory mode of Arm/vela.ini."""

    accelerator: str
    system_config: str
    memory_mode: str


# The two NPUs, each with vela.ini's configuration made for it (Vela's defaults for them, named explicitly)
CONFIGS = (NpuConfig("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram"),
           NpuConfig("ethos-u65-256", "Ethos_U65_Client_Server", "Dedicated_Sram_384KB"))


class VelaError(RuntimeError):
    """Vela could not be installed or did not compile the model (the message carries its last line)."""


def vela_python() -> Path:
    """$ASC_TF_VELA_PYTHON, else the cached venv of requirements-vela.txt (made now when missing)."""
    if os.environ.get(PYTHON_ENV):
        return Path(os.environ[PYTHON_ENV])
    try:
        return cached_venv(REQUIREMENTS, "vela")
    except VenvError as error:
        raise VelaError(f"no Vela: {error} (set {PYTHON_ENV} to a python with ethos-u-vela)") from None


def _summary(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        return next(csv.DictReader(handle))


def _operators(path: Path) -> tuple[int, int, list[str]]:
    """(NPU operators, CPU operators, the CPU ones' original op and name) from Vela's per-layer CSV."""
    npu, cpu, fallback = 0, 0, []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Target"] == "NPU":
                npu += 1
            else:
                cpu += 1
                fallback.append(f"{row['Original Operator']} ({row['Name']})")
    return npu, cpu, fallback


def compile_for(network: bytes, config: NpuConfig, python: Path, timeout: float = 600) -> tuple[bytes, dict[str, Any]]:
    """Vela's compiled model for `config` and its estimates (cycles, time at its clock, memory)."""
    with tempfile.TemporaryDirectory(prefix="asc_vela_") as tmp:
        model = Path(tmp) / "network_int8.tflite"
        model.write_bytes(network)
        out = Path(tmp) / "out"
        command = [str(python), "-m", "ethosu.vela", "--accelerator-config", config.accelerator,
                   "--config", "Arm/vela.ini", "--system-config", config.system_config,
                   "--memory-mode", config.memory_mode, "--verbose-performance",  # also writes the per-layer CSV
                   "--output-dir", str(out), str(model)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            last = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
            raise VelaError(f"vela --accelerator-config {config.accelerator} failed: {last}")
        summary = _summary(next(out.glob("*_summary_*.csv")))
        npu, cpu, fallback = _operators(next(out.glob("*_per-layer.csv")))
        compiled = (out / "network_int8_vela.tflite").read_bytes()
    kib = 1024
    external = "dram" if float(summary["dram_memory_used"]) else "off_chip_flash"
    figures = {
        "accelerator": config.accelerator, "system_config": config.system_config, "memory_mode": config.memory_mode,
        "clock_mhz": round(float(summary["core_clock"]) / 1e6),
        "estimated_cycles_npu": int(float(summary["cycles_npu"])),
        "estimated_cycles_total": int(float(summary["cycles_total"])),
        "estimated_inference_ms": round(float(summary["inference_time"]) * 1e3, 3),
        "sram_bytes": int(round(float(summary["sram_memory_used"]) * kib)),
        f"{external}_bytes": int(round(float(summary[f"{external}_memory_used"]) * kib)),
        "weights_in": summary["weights_storage_area"], "feature_maps_in": summary["feature_map_storage_area"],
        "npu_operators": npu, "cpu_operators": cpu, "cpu_fallback": fallback,  # Vela's graph (ReLUs apart)
        "compiled_bytes": len(compiled),
    }
    return compiled, figures


def compiled_operators(model: bytes) -> dict[str, int]:
    """Operator kinds of a compiled model and their counts: `ethos-u` (a custom op: the NPU's command stream)
    and any builtin op left for TensorFlow Lite Micro on the CPU."""
    from asc_tf.export.audit import OP_NAMES, schema

    root = schema.Model.GetRootAs(model, 0)
    kinds: dict[str, int] = {}
    for g in range(root.SubgraphsLength()):
        graph = root.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            code = root.OperatorCodes(graph.Operators(i).OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = code.CustomCode().decode() if code.CustomCode() else OP_NAMES.get(builtin, str(builtin))
            kinds[name] = kinds.get(name, 0) + 1
    return kinds


def version(python: Path) -> str:
    done = subprocess.run([str(python), "-m", "ethosu.vela", "--version"], capture_output=True, text=True, timeout=120)
    return done.stdout.strip() or "unknown"


def npu_section(network: bytes, configs: tuple[NpuConfig, ...] = CONFIGS) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest's `npu` section (Vela's estimates per configuration) and the compiled models by file name."""
    python = vela_python()
    files, figures = {}, []
    for config in configs:
        compiled, numbers = compile_for(network, config, python)
        name = f"npu/network_int8_vela_{config.accelerator}.tflite"
        files[name] = compiled
        figures.append({**numbers, "compiled_operators": compiled_operators(compiled), "file": name})
        log.info("Vela %s: %d NPU cycles (estimate), SRAM %d B, %d operators on the CPU", config.accelerator,
                 numbers["estimated_cycles_npu"], numbers["sram_bytes"], numbers["cpu_operators"])
    section = {"compiler": f"ethos-u-vela {version(python)}",
               "note": "Vela's performance estimates for vela.ini's system configurations, not measurements; the "
                       "compiled models run under TensorFlow Lite Micro with the Ethos-U driver (ethos-u custom op)",
               "configurations": figures}
    return section, files
