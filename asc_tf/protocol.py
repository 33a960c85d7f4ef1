"""`python -m asc_tf.protocol --splits 5 10 25 50 100 --seeds 3 [--address auto|HOST:6379|ray://HOST:10001]`:
the baseline's results table, every (split, seed) a normal run of train.py's recipe.

Each run has a fixed id `<group>-split<N>-seed<S>` (its folder under --project_dir/--project_name and its W&B
run, all in W&B group <group>). Without --address the runs are done here one after another; with it, as Ray
tasks on a cluster (one GPU or N CPUs each), and a run whose worker dies is resumed from its last checkpoint
on another worker. Rerunning skips finished runs. At the end the mean ± std table (asc_tf.report) is written
to <project_dir>/<project_name>/<group>.md. Every other flag is train.py's and applies to every run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from asc_tf import console
from asc_tf.config import Config, add_arguments, from_args
from asc_tf.data.splits import SUBSETS

if TYPE_CHECKING:  # the fleet imports Keras: not needed for --help
    from asc_tf.training.fleet import RunSpec

# train.py flags that make no sense for a set of runs (the protocol sets subset and seed itself)
EXCLUDED_FLAGS = ("subset", "resume", "evaluate", "ckpt_id", "demo")


def protocol_specs(config: Config, splits: Sequence[int], seeds: int, group: str) -> list["RunSpec"]:
    """One RunSpec per (split, seed): seeds are config.seed (default 0) + 0 .. seeds-1."""
    from asc_tf.training.fleet import RunSpec, absolute_paths

    first = config.seed or 0
    base = absolute_paths(config)
    return [RunSpec(f"{group}-split{n}-seed{s}", base.replace(subset=n, seed=s), group)
            for n in splits for s in range(first, first + seeds)]


def results_table(specs: Sequence["RunSpec"], out: Path) -> str:
    """The mean ± std tables over the runs' info.json, written (atomically) to `out`; returns the markdown."""
    from asc_tf.io import atomic_write_text
    from asc_tf.training.report import aggregate_markdown, load_run

    text = aggregate_markdown([load_run(spec.run.path) for spec in specs])
    atomic_write_text(out, text)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.protocol", description=__doc__.split("\n\n")[0],
                                     epilog="Every other flag is train.py's (defaults: upstream's recipe).")
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--splits", type=int, nargs="+", choices=SUBSETS, default=list(SUBSETS), metavar="N",
                          help=f"training splits in percent (default: {' '.join(map(str, SUBSETS))})")
    protocol.add_argument("--seeds", type=int, default=3, help="runs per split; seeds --seed (default 0) onwards "
                          "(default: 3)")
    protocol.add_argument("--group", default="protocol", help="W&B group and prefix of the run ids; a new group "
                          "starts a new set of runs (default: protocol)")
    protocol.add_argument("--address", default=None, help="Ray cluster: auto (started on this machine), HOST:6379, "
                          "or ray://HOST:10001; none: run here one after another")
    protocol.add_argument("--gpus_per_run", type=float, default=None,
                          help="GPUs each run reserves on Ray (default: 1 when the cluster has GPUs, else 0)")
    protocol.add_argument("--cpus_per_run", type=int, default=None, help="CPUs each run reserves on Ray and threads "
                          "it uses (default: 1 beside a GPU, else 2; here: all)")
    protocol.add_argument("--max_retries", type=int, default=3,
                          help="times a run is restarted after its Ray worker died (default: 3)")
    protocol.add_argument("--no_ship_code", action="store_true", help="Ray workers import their own installed "
                          "asc_tf instead of receiving this one")
    recipe = parser.add_argument_group("recipe (train.py's flags)")
    add_arguments(recipe, [f.name for f in fields(Config) if f.name not in EXCLUDED_FLAGS])
    console.add_verbose_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    console.setup(args.verbose)  # our lines only; TensorFlow's, Keras' bars and W&B's banners with --verbose
    config = from_args(args)
    splits = list(dict.fromkeys(args.splits))
    from asc_tf.errors import USER_ERRORS

    try:
        config.check()  # before TensorFlow loads
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    console.import_tensorflow()
    from asc_tf.training.fleet import FleetError, RayOptions, run_locally, run_on_ray

    specs = protocol_specs(config, splits, args.seeds, args.group)
    try:
        if args.address:
            run_on_ray(specs, RayOptions(address=args.address, gpus_per_run=args.gpus_per_run,
                                         cpus_per_run=args.cpus_per_run, max_retries=args.max_retries,
                                         ship_code=not args.no_ship_code))
        else:
            run_locally(specs, threads=args.cpus_per_run, verbose=1 if args.verbose else 0)
        out = Path(config.project_dir).resolve() / config.project_name / f"{args.group}.md"
        text = results_table(specs, out)
    except (FleetError, *USER_ERRORS) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(text)
    print(f"{len(specs)} runs ({len(splits)} splits x {args.seeds} seeds) in "
          f"{Path(config.project_dir).resolve() / config.project_name}; table: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
