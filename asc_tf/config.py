"""The one configuration of asc-tf: a dataclass whose defaults are upstream's recipe.

Every command line of the project is generated from `Config` (`add_arguments` / `from_args`), so a
flag, its type, its default and its help text exist in exactly one place. Flag names are upstream's
(`run_training.py`), so upstream commands carry over.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Optional

DATASET_DIR_ENV = "ASC_TF_DATASET_DIR"
UPSTREAM_SPLIT_URL = "https://github.com/CPJKU/dcase2024_task1_baseline/releases/download/files/"


# Named model widths, as plain data (`--preset NAME`; flags given beside it win). `baseline` is upstream's
# network; `int8_budget` is the widest network whose int8 export passes the audit (128,000 parameter bytes,
# 30 M MACs), found by `python -m asc_tf.budget` (the audit of converted files, not an estimate).
PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {"base_channels": 32, "channels_multiplier": 1.8, "expansion_rate": 2.1, "n_blocks": (3, 2, 1),
                 "strides": (2, 1, 1, 3, 1, 2, 4, 2, 1)},
    # audited int8 file (trained-like weights): 124,254 parameter bytes, 25,114,880 MACs. Stage 3 three blocks
    # wide, strided (2, 2) at block 6, where parameters are cheap in MACs; a narrower stem pays for it.
    "int8_budget": {"base_channels": 24, "channels_multiplier": 1.8, "expansion_rate": 2.7, "n_blocks": (3, 2, 3),
                    "strides": (2, 1, 1, 3, 1, 2, 4, 2, 1, 6, 2, 2)},
}


PRECISIONS = ("32", "32-true", "16-mixed", "bf16-mixed")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the flag and what it must be."""


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field carrying its command-line help text."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class Config:
    """Upstream's defaults (DCASE2024 Task 1 baseline, `run_training.py`) plus asc-tf's own settings."""

    # --- run bookkeeping (upstream) ---
    project_name: str = _opt("DCASE24_Task1", "W&B project and folder of the runs")
    experiment_name: str = _opt("Baseline", "W&B run name")
    num_workers: int = _opt(8, "processes reading and resampling WAV files during conversion (tf.data reads and "
                            "maps with one call per core, not by this flag)")
    precision: str = _opt("32", "training precision, Lightning's names: 32 (float32), 16-mixed / bf16-mixed (the "
                          "network under Keras' mixed_float16 / mixed_bfloat16 policy, float32 variables; "
                          "evaluation, export and prediction use the float32 model)")
    evaluate: bool = _opt(False, "evaluate a run instead of training")
    ckpt_id: Optional[str] = _opt(None, "run id whose last checkpoint --evaluate loads")

    # --- data (upstream) ---
    orig_sample_rate: int = _opt(44100, "sample rate of the WAV files")
    subset: int = _opt(100, "training split in percent", choices=(5, 10, 25, 50, 100))
    n_classes: int = _opt(10, "number of scene classes")

    # --- model (upstream) ---
    in_channels: int = _opt(1, "input channels of the network")
    base_channels: int = _opt(32, "channels of the first stage")
    channels_multiplier: float = _opt(1.8, "channel growth per stage")
    expansion_rate: float = _opt(2.1, "inverted-bottleneck expansion rate")
    n_blocks: tuple[int, ...] = _opt((3, 2, 1), "blocks per stage")
    strides: tuple[int, ...] = _opt(
        (2, 1, 1, 3, 1, 2, 4, 2, 1),
        "block strides as triples BLOCK FREQ TIME, blocks numbered from 1 over all stages (upstream: "
        "b2=(1,1) b3=(1,2) b4=(2,1)); unlisted blocks have stride 1",
    )

    preset: Optional[str] = _opt(None, "named model widths from asc_tf.config.PRESETS (baseline: upstream's; "
                                 "int8_budget: the widest that passes the int8 audit); width flags given win",
                                 choices=tuple(PRESETS))

    # --- training (upstream) ---
    n_epochs: int = _opt(150, "training epochs")
    batch_size: int = _opt(256, "batch size (global, over all replicas)")
    mixstyle_p: float = _opt(0.4, "Freq-MixStyle probability per batch")
    mixstyle_alpha: float = _opt(0.3, "Freq-MixStyle Beta(alpha, alpha)")
    weight_decay: float = _opt(0.0001, "AdamW decoupled weight decay")
    roll_sec: float = _opt(0.1, "time roll range in seconds, +-roll_sec (upstream's flag was int by mistake)")
    lr: float = _opt(0.005, "peak learning rate")
    warmup_steps: int = _opt(2000, "linear warm-up steps")

    # --- front end (upstream) ---
    sample_rate: int = _opt(32000, "sample rate the model sees")
    window_length: int = _opt(3072, "STFT window length")
    hop_length: int = _opt(500, "STFT hop length")
    n_fft: int = _opt(4096, "FFT size")
    n_mels: int = _opt(256, "mel bands")
    freqm: int = _opt(48, "frequency masking parameter (0 = off)")
    timem: int = _opt(0, "time masking parameter (0 = off)")
    f_min: int = _opt(0, "lowest mel frequency")
    f_max: Optional[int] = _opt(None, "highest mel frequency (default: sample_rate // 2)")

    # --- asc-tf: dataset location and conversion ---
    dataset_dir: Optional[str] = _opt(
        None, f"TAU development set folder (default: ${DATASET_DIR_ENV})", env=DATASET_DIR_ENV
    )
    split_dir: Optional[str] = _opt(
        None, "folder of split5.csv ... split100.csv, test.csv (default: DATASET/split_setup if it "
        "exists, else ./split_setup as upstream)"
    )
    split_url: str = _opt(UPSTREAM_SPLIT_URL, "where missing split files are downloaded from")
    tfrecords_dir: str = _opt("tfrecords", "root folder of converted datasets", aliases=("--out",))
    storage_dtype: str = _opt(
        "float16", "sample type stored in the shards", choices=("float16", "float32", "int16")
    )
    clips_per_shard: int = _opt(512, "clips per TFRecord shard")
    skip_bad: bool = _opt(False, "skip unreadable or malformed clips (listed in skipped.csv) instead of failing")
    overwrite: bool = _opt(False, "replace existing converted shards of another source")

    # --- asc-tf: input pipeline ---
    seed: Optional[int] = _opt(None, "random seed (shuffling, roll, initialisation); None = nondeterministic")
    shuffle_buffer: int = _opt(8192, "shuffle buffer in clips, when the split is not cached")
    cache: str = _opt("auto", "keep the split in memory", choices=("auto", "yes", "no"))
    cache_max_clips: int = _opt(40000, "largest split that cache=auto keeps in memory")

    # --- asc-tf: runs ---
    project_dir: str = _opt(".", "folder holding <project_name>/<run_id>/ run directories")
    resume: Optional[str] = _opt(None, "run id to continue from its last completed epoch")
    wandb: str = _opt("auto", "W&B mode (auto: online when logged in, else offline)",
                      choices=("auto", "online", "offline", "disabled"))
    strategy: str = _opt("auto", "tf.distribute strategy (auto: MirroredStrategy over all GPUs, else one "
                         "device; mirrored: over all visible devices; multiworker: refused, Keras 3 cannot fit "
                         "under it)",
                         choices=("auto", "one_device", "mirrored", "multiworker"))
    val_every: int = _opt(1, "validate on the test split every N epochs (upstream: 1; 0 = only at the end)")
    demo: bool = _opt(False, "make the synthetic dataset and train a short run end to end")
    synthetic_difficulty: str = _opt("tau", "profile of the synthetic dataset the demo and the experiments make "
                                     "(tau: as hard as TAU 2022 Mobile; easy: learnt in seconds)",
                                     choices=("tau", "easy"))
    jit_compile: bool = _opt(False, "XLA for the training step (TensorFlow's auto-clustering; ops without an XLA "
                             "kernel, such as Freq-MixStyle's Beta draw, stay outside it). Off by default: 14x "
                             "slower per step on a 2-core CPU (bench/train_step.py); not measured on a GPU")
    qat_epochs: int = _opt(0, "after float training, quantization-aware fine-tuning epochs (tfmot on a tf_keras "
                           "twin; 0 = none); export_tflite.py --int8 then exports the QAT network")

    def check(self) -> None:
        """Raise ConfigError naming the first value a run cannot use (before anything is written)."""
        for name in ("n_epochs", "batch_size", "num_workers", "clips_per_shard"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "val_every", "qat_epochs", "freqm", "timem"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be 0 or more, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)} (Lightning's "
                              "16-true / bf16-true / 64 are not supported: Keras trains float32 variables)")

    @property
    def roll_samples(self) -> int:
        """Half-width of the time roll in samples at `sample_rate` (upstream: 0.1 s)."""
        return int(round(self.roll_sec * self.sample_rate))

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed (unknown names raise TypeError)."""
        return dataclasses.replace(self, **changes)

    def with_preset(self, name: str) -> "Config":
        """A copy with the widths of preset `name` (the one place presets are applied)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        return self.replace(preset=name, **PRESETS[name])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        """Build from a saved dict; unknown keys are an error so a config of another version is noticed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys {unknown}: saved by another version of asc-tf?")
        out = dict(values)
        for name in ("n_blocks", "strides"):
            if name in out:
                out[name] = tuple(out[name])
        return cls(**out)


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(scalar type, is_optional) of a field annotation written as a string or a type."""
    hint = typing.get_type_hints(Config)[annotation] if isinstance(annotation, str) else annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def add_arguments(parser: argparse.ArgumentParser, names: Optional[Iterable[str]] = None,
                  helps: Optional[dict[str, str]] = None) -> None:
    """Add `--<field>` flags for the named Config fields (all when None), defaults from Config. `helps` replaces a
    field's text where the script gives the flag another meaning (e.g. predict.py's --overwrite); a default is
    shown once, and not when it is None or the text already says it."""
    wanted = None if names is None else list(names)
    by_name = {f.name: f for f in fields(Config)}
    for name in wanted if wanted is not None else by_name:
        f = by_name[name]
        kind, _ = _base_type(f.name)
        text = (helps or {}).get(name, f.metadata.get("help", ""))
        kwargs: dict[str, Any] = {"help": text, "default": argparse.SUPPRESS}
        default = f.default
        flags = [f"--{name}", *f.metadata.get("aliases", ())]
        if kind is bool:
            parser.add_argument(*flags, action="store_true", **kwargs)
            continue
        if typing.get_origin(kind) is tuple:
            kwargs.update(nargs="+", type=int)
        else:
            kwargs["type"] = kind
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if default is not None and "default" not in text:
            kwargs["help"] += f" (default: {default})"
        parser.add_argument(*flags, dest=name, **kwargs)


def from_args(args: argparse.Namespace, base: Optional[Config] = None) -> Config:
    """Config from parsed flags: flags given override `base` (default Config()), env fills the rest."""
    config = base or Config()
    given = {f.name: getattr(args, f.name) for f in fields(Config) if hasattr(args, f.name)}
    for f in fields(Config):
        env = f.metadata.get("env")
        if env and f.name not in given and getattr(config, f.name) is None and os.environ.get(env):
            given[f.name] = os.environ[env]
    for name in ("n_blocks", "strides"):
        if name in given:
            given[name] = tuple(given[name])
    if given.get("preset"):  # the preset's widths first, then every other flag given wins over them
        config = config.with_preset(given.pop("preset"))
    return config.replace(**given)
