"""Evaluation-set predictions for a DCASE submission: `python predict.py --ckpt_id ID`.

Writes `predictions/<id>/output.csv` in upstream's format (tab separated: filename, scene_label, the ten
class probabilities), `info.json` (MACs, Params, dev-test metrics, and under "output" the model file, its
sha256, the precision and the evaluation set) and the model file used. The model is a run's final model
(`--ckpt_id`), a `.keras` file (`--model`), or an exported bundle run through LiteRT (`--tflite BUNDLE_DIR`),
i.e. exactly what ships.

Precision, one rule for every path: a Keras model (--ckpt_id, --model, and train.py --evaluate) predicts as
upstream's predict step, float32 front end then the network in float16 (`model.half()`); a bundle (--tflite)
predicts as exported (its int8 or fp16 network, float32 front end). train.py --evaluate writes the same
output.csv into the same folder and keeps one this command made from the same model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asc_tf import console
from asc_tf.config import add_arguments, from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_id", help="run id under <project_dir>/DCASE24_Task1/ (float16 network, as upstream)")
    source.add_argument("--model", type=Path, help="a .keras model written by asc-tf (float16 network, as upstream)")
    source.add_argument("--tflite", type=Path, help="an export bundle folder (export_tflite.py --out), run as "
                        "exported under LiteRT")
    parser.add_argument("--eval_dir", type=Path,
                        help="evaluation set folder (default: TAU-urban-acoustic-scenes-2024-mobile-evaluation "
                             "next to the development set)")
    add_arguments(parser, ["project_dir", "project_name", "dataset_dir", "batch_size", "overwrite"],
                  helps={"overwrite": "replace an existing output.csv of these predictions"})
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    config = from_args(args)
    console.setup(args.verbose)
    from asc_tf.errors import USER_ERRORS  # light: nothing in it imports TensorFlow
    from asc_tf.training.runs import model_run

    try:
        if args.ckpt_id is not None:
            model_run(config, args.ckpt_id)  # an unknown run or a missing model: refused before pandas loads too
        from asc_tf.predict import check_prediction, predict_evaluation_set

        if args.tflite is None:  # a bundle runs under LiteRT: no TensorFlow at all
            check_prediction(config, ckpt_id=args.ckpt_id, model_path=args.model, eval_dir=args.eval_dir)
            console.import_tensorflow()
        output = predict_evaluation_set(config, ckpt_id=args.ckpt_id, model_path=args.model, bundle=args.tflite,
                                        eval_dir=args.eval_dir, progress=True)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"predictions: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
