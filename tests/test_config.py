"""The Config dataclass: upstream's defaults, and the command line generated from it."""

from __future__ import annotations

import argparse

import pytest

from asc_tf.config import DATASET_DIR_ENV, Config, add_arguments, from_args


def parse(argv: list[str], names=None) -> Config:
    parser = argparse.ArgumentParser()
    add_arguments(parser, names)
    return from_args(parser.parse_args(argv))


def test_defaults_are_upstreams_cli_defaults(golden_meta):
    config = Config()
    for name, value in golden_meta["cli_defaults"].items():
        assert getattr(config, name) == value, name
    assert config.roll_samples == 3200  # 0.1 s at 32 kHz (upstream: 4410 samples at 44.1 kHz)


def test_command_line_is_generated_from_the_config(monkeypatch):
    monkeypatch.delenv(DATASET_DIR_ENV, raising=False)
    assert parse([]) == Config()
    config = parse(["--roll_sec", "0.05", "--subset", "25", "--n_blocks", "2", "2", "1", "--skip_bad", "--out", "x"])
    assert (config.roll_sec, config.subset, config.n_blocks, config.skip_bad, config.tfrecords_dir) == (0.05, 25, (2, 2, 1), True, "x")
    with pytest.raises(SystemExit):
        parse(["--subset", "7"])


def test_dataset_dir_from_environment(monkeypatch):
    monkeypatch.setenv(DATASET_DIR_ENV, "/data/tau")
    assert parse([]).dataset_dir == "/data/tau"
    assert parse(["--dataset_dir", "/other"]).dataset_dir == "/other"


def test_round_trip_through_a_dict_and_unknown_keys():
    config = Config(seed=3, n_blocks=(1, 1, 1))
    assert Config.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown configuration keys \['bogus'\]"):
        Config.from_dict({**config.to_dict(), "bogus": 1})
