"""Prepare a dataset end to end and read it once: `python -m asc_tf.data [--dataset_dir D]`.

Without a dataset it makes the synthetic one in `data/synthetic/` (once), converts it into
`tfrecords/` (once; resumes if interrupted) and reads one training epoch and the test split through
the tf.data pipeline, printing what it read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from asc_tf import console
from asc_tf.config import add_arguments, from_args

DEFAULT_SYNTHETIC = Path("data/synthetic")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.data", description=__doc__.split("\n\n")[0])
    add_arguments(parser, ["dataset_dir", "split_dir", "tfrecords_dir", "subset", "batch_size", "num_workers", "seed",
                          "synthetic_difficulty"])
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    console.setup(args.verbose)
    console.import_tensorflow()
    config = from_args(args)

    from asc_tf.data import synthetic
    from asc_tf.data.audio import AudioFileError
    from asc_tf.data.convert import ConversionError, convert_dataset
    from asc_tf.data.meta import MetadataError
    from asc_tf.data.pipeline import ShardError, make_dataset
    from asc_tf.data.splits import SplitFilesMissing

    if not config.dataset_dir:
        dev_dir = DEFAULT_SYNTHETIC / synthetic.DEV_DIR_NAME
        if not (dev_dir / "meta.csv").exists():
            synthetic.generate(DEFAULT_SYNTHETIC, seed=0, size="medium", difficulty=config.synthetic_difficulty)
        config = config.replace(dataset_dir=str(dev_dir))
    try:
        shards_dir = convert_dataset(config, progress=console.is_terminal())
        for split, training in ((f"split{config.subset}", True), ("test", False)):
            start, clips, batches = time.perf_counter(), 0, 0
            for waveform, label in make_dataset(shards_dir, split, config, training=training):
                clips, batches = clips + int(label.shape[0]), batches + 1
            seconds = time.perf_counter() - start
            print(f"{split}: {clips} clips in {batches} batches of waveform {list(waveform.shape[1:])} float32 "
                  f"({'training: shuffled, rolled' if training else 'evaluation order'}), {clips / seconds:.0f} clips/s")
    except (ConversionError, MetadataError, AudioFileError, SplitFilesMissing, ShardError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"shards: {shards_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
