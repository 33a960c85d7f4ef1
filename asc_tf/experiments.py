"""`python -m asc_tf.experiments data_efficiency|mixstyle [--seeds N]`: the demo recipe on the synthetic dataset
over several seeds, as normal runs; an interrupted experiment resumes, finished runs are skipped.

    data_efficiency  splits 5, 10, 25, 50, 100 % -> mean ± std per split (the baseline README's table)
    mixstyle         --mixstyle_p 0.4 vs 0 on split 100 -> unseen-device accuracy per arm, mean ± std

Tables and pictures go to `<project_dir>/experiments/<experiment>.md|.png`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from asc_tf import console
from asc_tf.config import add_arguments, from_args

SPLITS = (5, 10, 25, 50, 100)  # as asc_tf.training.experiments.SPLITS (not imported: --help stays light)

# Flags of the demo recipe a user may change for an experiment (tests: a tiny dataset and 1 epoch).
FLAGS = ("dataset_dir", "project_dir", "project_name", "tfrecords_dir", "n_epochs", "batch_size", "warmup_steps",
         "lr", "val_every", "num_workers", "wandb", "clips_per_shard", "synthetic_difficulty")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.experiments", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("experiment", choices=("data_efficiency", "mixstyle"))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default: 3)")
    parser.add_argument("--splits", type=int, nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="data_efficiency: the splits to train and tabulate (default: all five)")
    parser.add_argument("--report_only", action="store_true",
                        help="tabulate the finished runs only (an experiment still running elsewhere), train nothing")
    parser.add_argument("--verbose", action="store_true", help="Keras progress bars and TensorFlow logs")
    add_arguments(parser, FLAGS)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2
    console.setup(args.verbose)  # our lines only; TensorFlow's, Keras' bars and W&B's banners with --verbose
    from asc_tf.errors import USER_ERRORS

    console.import_tensorflow()
    from asc_tf.training import experiments
    from asc_tf.training.demo import demo_base, demo_config
    from asc_tf.training.trainer import train

    config = from_args(args, base=demo_base())
    if not hasattr(args, "dataset_dir"):
        config = config.replace(dataset_dir=None)  # the demo's dataset, not $ASC_TF_DATASET_DIR
    try:
        config = demo_config(config)
        configs = experiments.plan(args.experiment, config, range(args.seeds), sorted(set(args.splits)))
        runs = experiments.run_all(configs, None if args.report_only else (
            lambda c: train(c, verbose=1 if args.verbose else 0)))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no finished run of {args.experiment} in {Path(config.project_dir) / config.project_name}",
              file=sys.stderr)
        return 2
    out_dir = Path(config.project_dir) / "experiments"
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.experiment == "data_efficiency":
        report = experiments.data_efficiency_report(runs)
        picture = experiments.plot_data_efficiency(report.summary, out_dir / "data_efficiency.png")
    else:
        report = experiments.mixstyle_report(runs)
        picture = experiments.plot_mixstyle(runs, out_dir / "mixstyle.png")
    experiments.write_report(report, out_dir / f"{args.experiment}.md")
    print(report.markdown)
    print(f"written: {out_dir / (args.experiment + '.md')}, {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
