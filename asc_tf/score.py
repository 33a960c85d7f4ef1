"""`python -m asc_tf.score OUTPUT_CSV LABELS_CSV`: macro accuracy and accuracy per device of an evaluation-set
`output.csv` against its labels (e.g. `data/synthetic/synthetic-evaluation-labels.csv`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Optional, Sequence

from asc_tf.scoring import ScoringError, format_score, score_files


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the score; `error: ...` on stderr and exit code 2 for a file that cannot be scored."""
    parser = argparse.ArgumentParser(prog="python -m asc_tf.score", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("output_csv", help="predictions in upstream's format (predict.py's output.csv)")
    parser.add_argument("labels_csv", help="tab-separated filename, scene_label [, source_label] of the same clips")
    parser.add_argument("--json", action="store_true", help="print the score as JSON instead of tables")
    args = parser.parse_args(argv)
    try:
        score = score_files(args.output_csv, args.labels_csv)
    except ScoringError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(score), indent=2) if args.json else format_score(score))
    return 0


if __name__ == "__main__":
    sys.exit(main())
