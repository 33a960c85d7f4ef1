"""`python -m asc_tf.report RUN [RUN ...]`: the baseline README's "mean ± std" tables over several runs (seeds),
read from each run's info.json. A RUN is a run directory, a run id under --project_dir, or an info.json file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from asc_tf import console
from asc_tf.config import add_arguments, from_args

if TYPE_CHECKING:  # imported lazily below: `report` answers without TensorFlow
    from asc_tf.training.report import RunResult

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.report", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directory, run id, or info.json file")
    add_arguments(parser, ["project_dir", "project_name"],
                  helps={"project_dir": "where a RUN id is looked up: <project_dir>/<project_name>/<id>, as train.py "
                                        "writes it, or <project_dir>/<id> (default: .)"})
    parser.add_argument("--out", default=None, help="also write the markdown to this file")
    return parser


def unique_runs(results: Sequence[RunResult]) -> list[RunResult]:
    """Each run once: the same info.json, or the same run id (a run and its `predictions/<id>/`), given twice
    counts once, with a warning (a mean over seeds must not weigh one seed twice)."""
    seen: dict[str, RunResult] = {}
    for result in results:
        key = result.name
        same = next((r for r in seen.values() if r.info_path.resolve() == result.info_path.resolve()), None)
        first = same or seen.get(key)
        if first is not None:
            log.warning("warning: %s and %s are the same run (%s): counted once", first.info_path, result.info_path,
                        first.name)
            continue
        seen[key] = result
    return list(seen.values())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print (and optionally write) the aggregate tables; `error: ...` and exit code 2 for an unreadable run."""
    args = build_parser().parse_args(argv)
    console.setup(False)
    config = from_args(args)
    from asc_tf.io import atomic_write_text
    from asc_tf.training.report import ReportError, aggregate_markdown, load_run

    roots = (Path(config.project_dir) / config.project_name, Path(config.project_dir))  # as train.py, or a runs folder

    def load(run: str):
        root = next((r for r in roots if (r / run).is_dir()), roots[0])
        return load_run(run, root)

    try:
        text = aggregate_markdown(unique_runs([load(run) for run in args.runs]))
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
        log.info("written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(console.run_command(main))  # `--json | head` ends quietly
