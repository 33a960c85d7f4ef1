"""Evaluation-set predictions for a DCASE submission: `python predict.py --ckpt_id ID`.

Writes `predictions/<id>/output.csv` in upstream's format (tab separated: filename, scene_label, the ten
class probabilities), `info.json` (MACs, Params, dev-test metrics) and the model file used. The model is
a run's final model (`--ckpt_id`, float16 network as upstream's predict step), a `.keras` file
(`--model`), or an exported bundle run through LiteRT (`--tflite BUNDLE_DIR`), i.e. exactly what ships.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asc_tf.config import add_arguments, from_args
from asc_tf.errors import USER_ERRORS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_id", help="run id under <project_dir>/DCASE24_Task1/")
    source.add_argument("--model", type=Path, help="a .keras model written by asc-tf")
    source.add_argument("--tflite", type=Path, help="an export bundle folder (export_tflite.py --out)")
    parser.add_argument("--eval_dir", type=Path,
                        help="evaluation set folder (default: TAU-urban-acoustic-scenes-2024-mobile-evaluation "
                             "next to the development set)")
    add_arguments(parser, ["project_dir", "project_name", "dataset_dir", "batch_size", "overwrite"])
    args = parser.parse_args(argv)
    config = from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from asc_tf.predict import predict_evaluation_set

    try:
        output = predict_evaluation_set(config, ckpt_id=args.ckpt_id, model_path=args.model, bundle=args.tflite,
                                        eval_dir=args.eval_dir)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"predictions: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
