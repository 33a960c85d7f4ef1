"""Search the widths that fill the int8 budget (`asc_tf.export.architecture.audit_architecture` audits each).

`search` tries a grid of widths and keeps the one whose audited int8 file has the most parameter bytes
within the limits: this is how the `int8_budget` preset was chosen.

    python -m asc_tf.budget [--json]      the search (a few minutes on 2 cores); prints every audited candidate
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional

from asc_tf import console
from asc_tf.complexity import complexity_rows, totals
from asc_tf.config import Config

log = logging.getLogger(__name__)

BASELINE_STRIDES = (2, 1, 1, 3, 1, 2, 4, 2, 1)  # upstream: b2 (1, 1), b3 (1, 2), b4 (2, 1)
# The search grid. Stages 2 and 3 run at 32 x 9 positions, so every parameter there costs 288 MACs, and
# upstream's network is already at 29.4 M MACs: at upstream's resolution 128 kB of weights cannot fit in 30 M
# MACs. The grid therefore also strides the first block of stage 3 ((2, 1): 16 x 9, (2, 2): 16 x 5), where
# parameters are cheap in MACs, and varies the stem width, the channel growth, the expansion and the depth
# of stage 3. Stage 1 keeps upstream's three blocks and strides.
GRID = {
    "base_channels": (24, 32),
    "stage3_blocks": (1, 2, 3),
    "stage3_stride": ((2, 1), (2, 2)),
    "channels_multiplier": (1.8, 1.9, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6),
    "expansion_rate": (1.8, 2.1, 2.4, 2.7, 3.0),
}


@dataclass
class Candidate:
    """One audited architecture of the search."""

    widths: dict[str, Any]
    parameter_bytes: int
    macs: int
    passed: bool


def _estimate(config: Config) -> tuple[int, int]:
    """Keras-side (torchinfo) parameters and MACs: only to order and prune the grid before auditing."""
    from asc_tf.model.cp_mobile import build_network

    return totals(complexity_rows(build_network(config)))


def widths_of(point: dict[str, Any]) -> dict[str, Any]:
    """Config fields of one grid point (stage-3 depth and stride become `n_blocks` and `strides`)."""
    k, stride = point["stage3_blocks"], tuple(point["stage3_stride"])
    return {"base_channels": point["base_channels"], "channels_multiplier": point["channels_multiplier"],
            "expansion_rate": point["expansion_rate"], "n_blocks": (3, 2, k),
            "strides": BASELINE_STRIDES + ((6, *stride) if stride != (1, 1) else ())}


def grid(space: dict[str, Iterable[Any]] = GRID) -> list[dict[str, Any]]:
    keys = list(space)
    return [widths_of(dict(zip(keys, values))) for values in itertools.product(*(space[k] for k in keys))]


def search(base: Optional[Config] = None, space: dict[str, Iterable[Any]] = GRID,
           max_audits: int = 12) -> tuple[Optional[Candidate], list[Candidate]]:
    """(best passing candidate, every audited one). The grid is pruned by the Keras estimate (params within
    12 % of the budget, MACs within 3 % of the limit), then up to `max_audits` candidates, largest first,
    are converted and audited; the winner is the audited file with the most parameter bytes that passes
    (ties: the most MACs)."""
    from asc_tf.export.architecture import audit_architecture  # LiteRT's schema and TensorFlow: not for --help
    from asc_tf.export.audit import MAX_MACS, MAX_PARAMETER_BYTES

    base = base or Config()
    estimated, seen = [], set()
    for widths in grid(space):
        params, macs = _estimate(base.replace(**widths))
        if (params, macs) in seen:  # another multiplier rounded to the same channels: the same network
            continue
        seen.add((params, macs))
        if 0.88 * MAX_PARAMETER_BYTES <= params <= MAX_PARAMETER_BYTES and macs <= 1.03 * MAX_MACS:
            estimated.append((params, macs, widths))
    log.info("%d of %d grid points near the budget by the Keras estimate", len(estimated), len(grid(space)))
    estimated.sort(key=lambda item: (-item[0], -item[1]))
    audited: list[Candidate] = []
    for _, _, widths in estimated[:max_audits]:
        audit = audit_architecture(base.replace(**widths))
        audited.append(Candidate(widths, audit.parameter_bytes, audit.macs, audit.passed))
        log.info("%s: %s", widths, audit.verdict())
    passing = [c for c in audited if c.passed]
    best = max(passing, key=lambda c: (c.parameter_bytes, c.macs)) if passing else None
    return best, audited


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.budget", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max_audits", type=int, default=12, help="candidates converted and audited (default: 12)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    console.setup(args.verbose)
    console.import_tensorflow()
    best, audited = search(max_audits=args.max_audits)
    if args.json:
        print(json.dumps({"best": asdict(best) if best else None, "audited": [asdict(c) for c in audited]}, indent=2))
    else:
        for c in audited:
            print(f"{'PASS' if c.passed else 'FAIL'} {c.parameter_bytes:>8,} B {c.macs:>12,} MACs  {c.widths}")
        print(f"best: {best}")
    return 0 if best else 1


if __name__ == "__main__":
    raise SystemExit(console.run_command(main))  # `--json | head` ends quietly
