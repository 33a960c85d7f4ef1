"""Model presets: applied in one place with flags winning, and the int8 audit of the budget preset (it passes
near the 128,000-byte limit; a deliberately oversized variant fails), from the command line too."""

from __future__ import annotations

import argparse
import json

import pytest

from asc_tf.export.architecture import audit_architecture
from asc_tf.complexity import main as complexity_main
from asc_tf.config import PRESETS, Config, add_arguments, from_args


def _parse(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_args(parser.parse_args(argv))


def test_presets_are_applied_and_flags_win():
    assert _parse([]) == Config() and Config().preset is None
    baseline = _parse(["--preset", "baseline"])
    assert {k: getattr(baseline, k) for k in PRESETS["baseline"]} == {k: getattr(Config(), k) for k in PRESETS["baseline"]}
    budget = _parse(["--preset", "int8_budget", "--expansion_rate", "2.5"])
    assert budget.preset == "int8_budget" and budget.n_blocks == PRESETS["int8_budget"]["n_blocks"]
    assert budget.expansion_rate == 2.5
    assert Config.from_dict(budget.to_dict()) == budget
    with pytest.raises(ValueError, match="unknown preset"):
        Config().with_preset("huge")


def test_budget_preset_int8_passes_close_to_the_limit(capsys):
    assert complexity_main(["--preset", "int8_budget", "--int8", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["passed"] and 120_000 < figures["parameter_bytes"] <= 128_000 and figures["macs"] <= 30_000_000
    assert figures["parameter_bytes"] > 1.9 * audit_architecture(Config().with_preset("baseline")).parameter_bytes


def test_architecture_audit_counts_biases_as_a_trained_export():
    """Fresh networks fold to all-zero biases, which the converter would store once: the audit of an architecture
    uses trained-like statistics, so it equals the trained baseline's export (tests/test_export.py)."""
    audit = audit_architecture(Config().with_preset("baseline"))
    assert audit.parameter_bytes == 63_896 and audit.parameter_elements["bias"] == {"INT32": 1_354}


def test_oversized_variant_fails_the_audit(capsys):
    assert complexity_main(["--preset", "int8_budget", "--channels_multiplier", "2.3", "--int8"]) == 3
    text = capsys.readouterr().out
    assert "FAIL" in text and "OVER" in text
