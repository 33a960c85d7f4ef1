"""The Keras network's complexity table against upstream's torchinfo table, row by row."""

from __future__ import annotations

import keras
import pytest

import asc_tf
from asc_tf import Config
from asc_tf.complexity import complexity_rows, format_table, main, totals


@pytest.fixture(scope="module")
def rows():
    return complexity_rows(asc_tf.build_model())


def test_rows_equal_torchinfo(rows, golden_meta):
    expected = golden_meta["torchinfo_layers"]
    assert len(rows) == len(expected) == 108
    for ours, ref in zip(rows, expected):
        assert ours == ref, ref["name"]


def test_totals(rows, golden_meta):
    assert totals(rows) == (61148, 29419156) == (golden_meta["nessi_params"], golden_meta["nessi_macs"])


def test_table_text(rows):
    text = format_table(rows)
    assert "Total params: 61,148" in text and "MACs: 29,419,156" in text
    assert "Conv2d (0): 6-20" in text and "331,776" in text


def test_cli_on_saved_model_and_refusals(tmp_path, capsys):
    path = tmp_path / "m.keras"
    asc_tf.build_model().save(path)
    assert main([str(path)]) == 0
    assert "MACs: 29,419,156" in capsys.readouterr().out
    assert main([str(tmp_path / "m.tflite")]) == 2  # .tflite files are audited (tests/test_export.py); none here
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'm.tflite'}: cannot read")
    assert main([str(tmp_path / "m.onnx")]) == 2
    assert "only .keras and .tflite files are supported" in capsys.readouterr().err
    assert main(["--base_channels", "48"]) == 0  # the network of a configuration, no file
    assert "MACs: 29,419,156" not in capsys.readouterr().out


def test_other_models_are_refused():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not an asc-tf CP-Mobile network"):
        complexity_rows(plain)


def test_variant_counts_follow_the_structure():
    rows = complexity_rows(asc_tf.model.build_network(Config(n_blocks=(2, 1, 1))))
    assert sum(r["class_name"] == "Block" for r in rows) == 4
    assert totals(rows)[0] == sum(r["params"] for r in rows if r["leaf"])
