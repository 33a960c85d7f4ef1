"""`python -m asc_tf.report RUN [RUN ...]`: the baseline README's "mean ± std" tables over several runs (seeds),
read from each run's info.json. A RUN is a run directory, a run id under --project_dir, or an info.json file."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from asc_tf import console


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.report", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directory, run id, or info.json file")
    parser.add_argument("--project_dir", default="DCASE24_Task1", help="folder of the runs (default: DCASE24_Task1)")
    parser.add_argument("--out", default=None, help="also write the markdown to this file")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print (and optionally write) the aggregate tables; `error: ...` and exit code 2 for an unreadable run."""
    args = build_parser().parse_args(argv)
    console.setup(False)
    from asc_tf.io import atomic_write_text
    from asc_tf.training.report import ReportError, aggregate_markdown, load_run

    try:
        text = aggregate_markdown([load_run(run, args.project_dir) for run in args.runs])
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
        logging.getLogger(__name__).info("written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
