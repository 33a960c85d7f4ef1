"""Vela (Arm's Ethos-U compiler, in its cached venv) on the exported int8 network: the compiled models, the
estimates read from Vela's reports, and the operators left to the CPU checked against the compiled file."""

from __future__ import annotations

from pathlib import Path

import pytest

from asc_tf.export import vela


def _pins(name: str) -> dict[str, str]:
    text = (Path(__file__).resolve().parents[1] / name).read_text()
    lines = [l.split("#")[0].strip() for l in text.splitlines()]
    return dict(l.split("==") for l in lines if l)


def test_vela_venv_pins_everything():
    """Vela's venv: every package pinned exactly, the numpy of the training pins."""
    pins = _pins("requirements-vela.txt")
    assert set(pins) == {"ethos-u-vela", "flatbuffers", "numpy"}
    assert pins["numpy"] == _pins("requirements.txt")["numpy"]


@pytest.fixture(scope="module")
def compiled(int8_export):
    network = (Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"]).read_bytes()
    try:
        return vela.npu_section(network)
    except vela.VelaError as error:  # the venv could not be made (no package index): say why
        pytest.fail(str(error))


def test_both_npus_compile_with_estimates(compiled):
    section, files = compiled
    assert section["compiler"].startswith("ethos-u-vela ")
    configs = {c["accelerator"]: c for c in section["configurations"]}
    assert set(configs) == {"ethos-u55-128", "ethos-u65-256"}
    for c in configs.values():
        assert files[c["file"]][4:8] == b"TFL3" and len(files[c["file"]]) == c["compiled_bytes"]
        assert c["estimated_cycles_total"] >= c["estimated_cycles_npu"] > 0 and c["sram_bytes"] > 0
        # Vela's time is its cycles at its clock
        assert c["estimated_inference_ms"] == pytest.approx(c["estimated_cycles_total"] / (c["clock_mhz"] * 1e3),
                                                            abs=1e-3)
    # the 256-MAC U65 at twice the clock needs fewer cycles than the 128-MAC U55
    assert configs["ethos-u65-256"]["estimated_cycles_npu"] < configs["ethos-u55-128"]["estimated_cycles_npu"]


def test_cpu_fallback_agrees_with_the_compiled_model(compiled):
    """What Vela's report leaves to the CPU is what the compiled file still holds besides the ethos-u op."""
    section, files = compiled
    for c in section["configurations"]:
        kinds = vela.compiled_operators(files[c["file"]])
        assert kinds.get("ethos-u", 0) >= 1
        on_cpu = sum(n for kind, n in kinds.items() if kind != "ethos-u")
        assert (on_cpu == 0) == (c["cpu_operators"] == 0), (kinds, c["cpu_fallback"])
