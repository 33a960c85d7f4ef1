"""Parameters and MACs of a Keras CP-Mobile network, row by row in upstream's torchinfo layout.

Upstream measures complexity with `torchinfo.summary(model, (1, 1, 256, 65))`. This module rebuilds
that table from the Keras layers (shapes in torch's NCHW order, torchinfo's MAC rules), so the port can
be checked against upstream's 61,148 parameters and 29,419,156 MACs.

    python -m asc_tf.complexity MODEL.keras     (or no MODEL: the network of the Config flags)
    python -m asc_tf.complexity MODEL.tflite [--json]   the audit of an exported file (asc_tf.export.audit)
    python -m asc_tf.complexity --preset NAME --int8 [--json]   build, convert to int8 as the export does
                                                    (random calibration) and audit, before any training
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from asc_tf import console
from asc_tf.config import add_arguments, from_args

if TYPE_CHECKING:  # Keras is imported only by the commands that build or load a model: the audit of a
    import keras   # .tflite file and --help answer without TensorFlow

NETWORK_NAME = "network"  # asc_tf.model.cp_mobile.NETWORK_NAME, repeated to keep this module free of Keras

MODEL_FLAGS = ("preset", "n_classes", "in_channels", "base_channels", "channels_multiplier", "expansion_rate", "n_blocks",
               "strides", "n_mels", "sample_rate", "hop_length")


@dataclass
class Node:
    """One torchinfo row: a torch module with its shapes (NCHW, batch 1) and direct parameter count."""

    class_name: str
    var_name: str
    input_size: list[int]
    output_size: list[int]
    own_params: int = 0
    kind: str = "container"  # conv | bn | none | container
    children: list["Node"] = field(default_factory=list)

    @property
    def params(self) -> int:
        return self.own_params + sum(c.params for c in self.children)


def _nchw(shape: Any) -> list[int]:
    dims = [1 if d is None else int(d) for d in shape]
    return [dims[0], dims[-1], *dims[1:-1]] if len(dims) == 4 else dims


def _in(layer: keras.layers.Layer) -> list[int]:
    return _nchw(layer.input.shape)


def _out(layer: keras.layers.Layer) -> list[int]:
    return _nchw(layer.output.shape)


def _own_params(layer: keras.layers.Layer) -> int:
    """Parameters torch would count: conv kernels/biases, BN gamma/beta (not the running statistics)."""
    skip = {id(getattr(layer, "moving_mean", None)), id(getattr(layer, "moving_variance", None))}
    return sum(math.prod(w.shape) for w in layer.weights if id(w) not in skip)


def _has(network: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in network.layers)


def _conv_norm_act(network: keras.Model, prefix: str, var_name: str) -> Node:
    """torchvision Conv2dNormActivation: Conv2d (0), BatchNorm2d (1), [ReLU (2)]."""
    conv, bn = network.get_layer(f"{prefix}_conv"), network.get_layer(f"{prefix}_bn")
    conv_in = _in(network.get_layer(f"{prefix}_pad")) if _has(network, f"{prefix}_pad") else _in(conv)
    children = [
        Node("Conv2d", "0", conv_in, _out(conv), _own_params(conv), "conv"),
        Node("BatchNorm2d", "1", _in(bn), _out(bn), _own_params(bn), "bn"),
    ]
    end = bn
    if _has(network, f"{prefix}_relu"):
        end = network.get_layer(f"{prefix}_relu")
        children.append(Node("ReLU", "2", _in(end), _out(end), 0, "none"))
    return Node("Conv2dNormActivation", var_name, conv_in, _out(end), children=children)


def _block(network: keras.Model, prefix: str, var_name: str) -> Node:
    units = [_conv_norm_act(network, f"{prefix}_{role}", str(i)) for i, role in enumerate(("exp", "dw", "proj"))]
    block_in, block_out = units[0].input_size, units[-1].output_size
    children = [Node("Sequential", "block", block_in, block_out, children=units)]
    if _has(network, f"{prefix}_add"):
        if _has(network, f"{prefix}_shortcut_pool"):
            pool = network.get_layer(f"{prefix}_shortcut_pool")
            children.append(Node("Sequential", "shortcut", block_in, _out(pool), children=[
                Node("AvgPool2d", "0", block_in, _out(pool), 0, "none"),
                Node("Sequential", "1", _out(pool), _out(pool), 0, "none"),
            ]))
        else:
            children.append(Node("Sequential", "shortcut", block_in, block_in, 0, "none"))
    relu = network.get_layer(f"{prefix}_relu")
    children.append(Node("ReLU", "after_block_activation", _in(relu), _out(relu), 0, "none"))
    return Node("Block", var_name, block_in, _out(relu), children=children)


def network_tree(network: keras.Model) -> Node:
    """The torch module tree of a CP-Mobile network built by `asc_tf.model.build_network`."""
    stems = sorted({m[1] for layer in network.layers if (m := re.match(r"^in_c(\d+)_conv$", layer.name))}, key=int)
    blocks: dict[str, list[str]] = {}
    for layer in network.layers:
        if (m := re.match(r"^s(\d+)_b(\d+)_exp_conv$", layer.name)):
            blocks.setdefault(m[1], []).append(m[2])
    if not stems or not blocks or not _has(network, "ff_conv"):
        raise ValueError(f"model {network.name!r} is not an asc-tf CP-Mobile network (layers in_c*, s*_b*, ff_*)")
    in_c = [_conv_norm_act(network, f"in_c{i}", str(i)) for i in stems]
    stages = []
    for s, nums in blocks.items():
        kids = [_block(network, f"s{s}_b{b}", f"b{b}") for b in nums]
        stages.append(Node("Sequential", f"s{s}", kids[0].input_size, kids[-1].output_size, children=kids))
    conv, bn, pool = (network.get_layer(n) for n in ("ff_conv", "ff_bn", "ff_pool"))
    pooled = _out(conv)[:2] + [1, 1]
    ff = [
        Node("Conv2d", "0", _in(conv), _out(conv), _own_params(conv), "conv"),
        Node("BatchNorm2d", "1", _in(bn), _out(bn), _own_params(bn), "bn"),
        Node("AdaptiveAvgPool2d", "2", _out(bn), pooled, 0, "none"),
    ]
    top = [
        Node("Sequential", "in_c", in_c[0].input_size, in_c[-1].output_size, children=in_c),
        Node("Sequential", "stages", stages[0].input_size, stages[-1].output_size, children=stages),
        Node("Sequential", "feed_forward", ff[0].input_size, pooled, children=ff),
    ]
    return Node("Network", "Network", in_c[0].input_size, _out(pool), children=top)


def _macs(node: Node) -> int:
    """torchinfo 1.8's rule: conv weight x output H x W, BN one per parameter; containers out[:2] x params."""
    if node.children:
        return math.prod(node.output_size[:2]) * node.params
    if node.kind == "conv":
        return node.own_params * math.prod(node.output_size[:1] + node.output_size[2:])
    if node.kind == "bn":
        return node.output_size[0] * node.own_params
    return 0


def complexity_rows(model: keras.Model) -> list[dict[str, Any]]:
    """torchinfo's rows (`name`, `class_name`, `depth`, `leaf`, shapes, `params`, `macs`) in summary order."""
    network = _network(model)
    rows: list[dict[str, Any]] = []
    counters: dict[int, int] = {}

    def visit(node: Node, depth: int) -> None:
        if depth == 0:
            name = f"{node.class_name} ({node.var_name})"
        else:
            counters[depth] = counters.get(depth, 0) + 1
            name = f"{node.class_name} ({node.var_name}): {depth}-{counters[depth]}"
        rows.append({
            "name": name, "class_name": node.class_name, "depth": depth, "leaf": not node.children,
            "input_size": node.input_size, "output_size": node.output_size, "params": node.params,
            "trainable_params": node.params, "macs": _macs(node),
        })
        for child in node.children:
            visit(child, depth + 1)

    visit(network_tree(network), 0)
    return rows


def totals(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(parameters, MACs) as upstream reports them: all parameters, MACs summed over leaf rows."""
    return rows[0]["params"], sum(r["macs"] for r in rows if r["leaf"])


def format_table(rows: list[dict[str, Any]]) -> str:
    """The table as torchinfo prints it (tree prefixes, thousands separators, totals)."""
    widths = (62, 22, 22, 12, 14)
    head = ("Layer (type (var_name):depth-idx)", "Input Shape", "Output Shape", "Param #", "Mult-Adds")
    rule = "=" * sum(widths)
    lines = [rule, "".join(h.ljust(w) for h, w in zip(head, widths)), rule]
    for r in rows:
        prefix = "" if r["depth"] == 0 else "│    " * (r["depth"] - 1) + "└─"
        macs = f"{r['macs']:,}" if r["leaf"] and r["macs"] else "--"
        params = f"{r['params']:,}" if r["params"] else "--"
        cells = (prefix + r["name"], str(r["input_size"]), str(r["output_size"]), params, macs)
        lines.append("".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    params, macs = totals(rows)
    lines += [rule, f"Total params: {params:,}", f"Trainable params: {params:,}", "Non-trainable params: 0",
              f"Total mult-adds (M): {macs / 1e6:.2f}", rule, f"MACs: {macs:,}  Parameters: {params:,}"]
    return "\n".join(lines)


def _network(model: keras.Model) -> keras.Model:
    return model.get_layer(NETWORK_NAME) if _has(model, NETWORK_NAME) else model


def load_for_complexity(path: str | Path) -> keras.Model:
    """A `.keras` file of the project (full model or network alone); other formats are refused."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: only .keras and .tflite files are supported")
    import asc_tf

    return asc_tf.load_model(path)


def _audit_tflite(path: str, as_json: bool) -> int:
    """The flatbuffer audit of a `.tflite` file: 0 within the challenge limits, 3 over one."""
    from asc_tf.export.audit import audit_file, format_audit

    audit = audit_file(path)
    print(json.dumps(audit.to_dict(), indent=2) if as_json else format_audit(audit), end="" if not as_json else "\n")
    return 0 if audit.passed else 3


def _audit_architecture(args: argparse.Namespace) -> int:
    """`--int8`: the audit of the flags' network converted to int8: 0 within the challenge limits, 3 over one."""
    from asc_tf.export.architecture import audit_architecture
    from asc_tf.export.audit import format_audit

    audit = audit_architecture(from_args(args))
    print(json.dumps(audit.to_dict(), indent=2) if args.json else format_audit(audit), end="" if not args.json else "\n")
    return 0 if audit.passed else 3


def _frontend_cost(model: keras.Model, args: argparse.Namespace) -> Any:
    """The front end's arithmetic: of the model's `frontend` layer, else of the flags' settings."""
    from asc_tf.export.audit import frontend_cost

    names = ("sample_rate", "n_fft", "window_length", "hop_length", "n_mels", "f_min", "f_max")
    if _has(model, "frontend"):
        settings = model.get_layer("frontend").get_config()
        samples = int(model.input.shape[-1])
    else:
        settings, samples = vars(from_args(args)), None
    return frontend_cost(**{n: settings[n] for n in names}, samples=samples)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.complexity", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a .keras or .tflite file; without it, the network of the flags below")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (for scripts)")
    parser.add_argument("--int8", action="store_true", help="without MODEL: convert the network of the flags "
                        "(e.g. --preset int8_budget) to int8 as the export does and audit the file")
    add_arguments(parser, MODEL_FLAGS)
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    console.setup(args.verbose)
    from asc_tf.export.errors import AuditError

    try:
        if args.model and Path(args.model).suffix == ".tflite":
            return _audit_tflite(args.model, args.json)
        if args.model and Path(args.model).suffix != ".keras":
            raise ValueError(f"{args.model}: only .keras and .tflite files are supported")
        console.import_tensorflow()  # everything below builds or loads a Keras model
        if args.int8:
            if args.model:
                raise ValueError("--int8 audits the network of the flags (--preset ...): give no MODEL file")
            return _audit_architecture(args)
        if args.model:
            model = load_for_complexity(args.model)
        else:
            from asc_tf.model.cp_mobile import build_network

            model = build_network(from_args(args))
        rows = complexity_rows(model)
        front = _frontend_cost(model, args)
        if args.json:
            params, macs = totals(rows)
            print(json.dumps({"parameters": params, "macs": macs, "rows": rows, "frontend": front.to_dict()},
                             indent=2))
        else:
            from asc_tf.export.audit import format_frontend_cost

            print(format_table(rows))
            print(format_frontend_cost(front), end="")
    except (ValueError, OSError, AuditError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(console.run_command(main))  # `--json | head` ends quietly
