"""Complexity audit of a `.tflite` file, read from the flatbuffer itself: what the challenge limits is what ships.

Parameter bytes are the bytes of the constant tensors the ops read (weights, int32 biases, and any other
constant such as paddings), each buffer counted once. MACs come from the shapes stored in the file for the
multiply-accumulate ops; every other op is listed with its count and a rough cost that is not counted as
MACs. A model whose shapes are not fixed (dynamic batch, unknown rank) or whose cost depends on control
flow is refused: its stored shapes are placeholders and any count would be wrong.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from asc_tf.export.errors import AuditError

try:  # LiteRT's generated schema reads the flatbuffer in ~0.5 s; importing TensorFlow's copy takes ~10 s
    from ai_edge_litert import schema_py_generated as schema
except ImportError:  # pragma: no cover (a machine with TensorFlow but not LiteRT)
    from tensorflow.lite.python import schema_py_generated as schema  # type: ignore[no-redef]

MAX_PARAMETER_BYTES = 128_000  # DCASE2024 Task 1: 128 kB of parameters
MAX_MACS = 30_000_000  # ... and 30 M MACs per 1 s clip

OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
TYPE_NAMES = {code: name for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV", "CONV_3D")
CONTROL_FLOW = ("WHILE", "IF", "CALL_ONCE", "CALL")
POOL_OPS = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
REDUCE_OPS = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL")
DATA_MOVEMENT = ("PAD", "PADV2", "MIRROR_PAD", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "GATHER",
                 "GATHER_ND", "STRIDED_SLICE", "SLICE", "CONCATENATION", "SPLIT", "SPLIT_V", "PACK", "UNPACK",
                 "TILE", "BROADCAST_TO", "SHAPE", "REAL", "IMAG", "CAST")
ELEMENT_ROLES = {1: "weights", 2: "bias"}  # operand index -> role, for the MAC ops (TRANSPOSE_CONV differs)


@dataclass
class OpRow:
    """One operator of the model: its shapes, the constant bytes it reads first, its MACs or other cost."""

    index: int
    op: str
    inputs: list[list[int]]
    output: list[int]
    dtype: str
    parameter_bytes: int = 0
    macs: int = 0
    other_cost: Optional[int] = None  # element operations of a non-MAC op (None: unknown, e.g. a custom op)


@dataclass
class Audit:
    """The figures of one `.tflite` model against the challenge limits."""

    name: str
    file_bytes: int
    rows: list[OpRow]
    parameter_bytes: int
    parameter_bytes_by_role: dict[str, int]  # weights / bias / other
    parameter_elements: dict[str, dict[str, int]]  # role -> dtype -> elements
    macs: int
    op_counts: dict[str, int]
    other_ops: dict[str, dict[str, Optional[int]]]  # op -> {"count", "cost"}: listed, not counted as MACs
    max_parameter_bytes: int = MAX_PARAMETER_BYTES
    max_macs: int = MAX_MACS
    notes: list[str] = field(default_factory=list)

    @property
    def parameters_ok(self) -> bool:
        return self.parameter_bytes <= self.max_parameter_bytes

    @property
    def macs_ok(self) -> bool:
        return self.macs <= self.max_macs

    @property
    def passed(self) -> bool:
        return self.parameters_ok and self.macs_ok

    def to_dict(self) -> dict[str, Any]:
        """The figures for scripts and the manifest (`python -m asc_tf.complexity FILE.tflite --json`)."""
        out = asdict(self)
        out.update(parameters_ok=self.parameters_ok, macs_ok=self.macs_ok, passed=self.passed)
        return out

    def verdict(self) -> str:
        """One line: PASS/FAIL with both figures against both limits."""
        word = "PASS" if self.passed else "FAIL"
        return (f"{word}: {self.parameter_bytes:,} parameter bytes (limit {self.max_parameter_bytes:,}"
                f"{'' if self.parameters_ok else ', OVER'}), {self.macs:,} MACs (limit {self.max_macs:,}"
                f"{'' if self.macs_ok else ', OVER'})")


def _op_name(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))  # schema 3a moved the field
    name = OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        return f"CUSTOM:{custom}"
    return name


def _shape(tensor: Any) -> list[int]:
    return [] if tensor.shape is None else [int(d) for d in tensor.shape]


def _constant_bytes(model: Any, tensor: Any) -> int:
    """Bytes stored for a constant tensor (0 when it is computed at run time)."""
    if tensor.isVariable:
        return 0
    if getattr(tensor, "externalBuffer", 0) and model.externalBuffers:
        for ext in model.externalBuffers:
            if ext.id == tensor.externalBuffer:
                return int(ext.length)
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return 0
    buffer = model.buffers[tensor.buffer]
    if buffer.data is not None and len(buffer.data):
        return int(len(buffer.data))
    return int(buffer.size) if buffer.offset > 1 else 0  # models over 2 GB keep buffers after the flatbuffer


def _check_fixed(subgraph: Any, op_names: list[str]) -> None:
    """Refuse dynamic shapes and control flow: stored shapes would be placeholders, counts wrong."""
    flow = sorted({name for name in op_names if name in CONTROL_FLOW})
    if flow:
        raise AuditError(f"the model uses control flow ({', '.join(flow)}): its cost per clip is not fixed, "
                         "so the audit refuses to count it")
    for tensor in subgraph.tensors:
        signature = tensor.shapeSignature
        if signature is not None and any(int(d) < 0 for d in signature):
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
            raise AuditError(f"tensor {name!r} has a dynamic shape {list(map(int, signature))}: export with fixed "
                             "shapes (batch 1) so the stored shapes are real; the audit refuses to guess")


def _macs(name: str, op: Any, subgraph: Any) -> int:
    """Multiply-accumulates of one MAC op from its stored shapes (batch-norm is already folded in)."""
    shape = lambda i: _shape(subgraph.tensors[i])  # noqa: E731
    out = math.prod(shape(op.outputs[0]))
    if name == "CONV_2D":  # filter [Cout, kh, kw, Cin/groups]
        _, kh, kw, cin = shape(op.inputs[1])
        return out * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, Cout]
        _, kh, kw, _ = shape(op.inputs[1])
        return out * kh * kw
    if name == "FULLY_CONNECTED":  # weights [units, in]
        return out * shape(op.inputs[1])[-1]
    if name == "CONV_3D":  # filter [kd, kh, kw, Cin, Cout]
        kd, kh, kw, cin, _ = shape(op.inputs[1])
        return out * kd * kh * kw * cin
    if name == "TRANSPOSE_CONV":  # (output_shape, weights [Cout, kh, kw, Cin], input)
        _, kh, kw, _ = shape(op.inputs[1])
        cout = shape(op.inputs[1])[0]
        return math.prod(shape(op.inputs[2])) * kh * kw * cout
    if name == "BATCH_MATMUL":
        lhs = shape(op.inputs[0])
        opts = op.builtinOptions
        depth = lhs[-2] if opts is not None and getattr(opts, "adjX", False) else lhs[-1]
        return out * depth
    raise AssertionError(name)


def _other_cost(name: str, op: Any, subgraph: Any) -> Optional[int]:
    """A rough count of arithmetic in a non-MAC op: listed for information, never counted as MACs."""
    if name.startswith("CUSTOM:"):
        return None
    if name in DATA_MOVEMENT:
        return 0
    out = math.prod(_shape(subgraph.tensors[op.outputs[0]]))
    if name in POOL_OPS:
        opts = op.builtinOptions
        return out * (opts.filterHeight * opts.filterWidth if opts is not None else 1)
    if name in REDUCE_OPS:
        return math.prod(_shape(subgraph.tensors[op.inputs[0]]))
    if name == "RFFT2D":  # ~ n/2 log2 n complex butterflies per transformed row
        n = _shape(subgraph.tensors[op.inputs[0]])[-1]
        rows = math.prod(_shape(subgraph.tensors[op.inputs[0]])[:-1])
        return int(rows * (n // 2) * max(1, int(math.log2(max(n, 2)))))
    return out  # element-wise ops: one operation per output element


def _roles(subgraph: Any, names: list[str]) -> dict[int, str]:
    """Tensor index -> "weights"/"bias" for operands of MAC ops, followed back through DEQUANTIZE (fp16 files)."""
    roles: dict[int, str] = {}
    for op, name in zip(subgraph.operators, names):
        if name not in MAC_OPS or name == "BATCH_MATMUL":
            continue
        slots = {1: "weights", 3: "bias"} if name == "TRANSPOSE_CONV" else ELEMENT_ROLES
        for slot, role in slots.items():
            if slot < len(op.inputs) and op.inputs[slot] >= 0:
                roles[int(op.inputs[slot])] = role
    for op, name in zip(subgraph.operators, names):
        if name == "DEQUANTIZE" and int(op.outputs[0]) in roles:
            roles[int(op.inputs[0])] = roles[int(op.outputs[0])]
    return roles


def audit_tflite(data: bytes, name: str = "model.tflite", max_parameter_bytes: int = MAX_PARAMETER_BYTES,
                 max_macs: int = MAX_MACS) -> Audit:
    """Audit a TFLite flatbuffer (any model, not only ours); raises AuditError when it cannot count honestly."""
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as error:  # noqa: BLE001 (flatbuffers raises anything on garbage)
        raise AuditError(f"{name}: not a TFLite flatbuffer ({type(error).__name__})") from None
    if not model.subgraphs:
        raise AuditError(f"{name}: the model has no subgraph")
    subgraph = model.subgraphs[0]
    operators = subgraph.operators or []
    names = [_op_name(model, op) for op in operators]
    try:
        _check_fixed(subgraph, names)
    except AuditError as error:
        raise AuditError(f"{name}: {error}") from None
    roles = _roles(subgraph, names)
    seen_buffers: set[tuple[str, int]] = set()
    rows: list[OpRow] = []
    by_role: dict[str, int] = {"weights": 0, "bias": 0, "other": 0}
    elements: dict[str, dict[str, int]] = {}
    other: dict[str, dict[str, Optional[int]]] = {}
    counts: dict[str, int] = {}
    for index, (op, op_name) in enumerate(zip(operators, names)):
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        first_out = subgraph.tensors[int(op.outputs[0])] if op.outputs is not None and len(op.outputs) else None
        row = OpRow(index, op_name, [_shape(subgraph.tensors[i]) for i in inputs],
                    _shape(first_out) if first_out is not None else [],
                    TYPE_NAMES.get(first_out.type, "?") if first_out is not None else "?")
        for i in inputs:
            tensor = subgraph.tensors[i]
            size = _constant_bytes(model, tensor)
            key = ("ext", tensor.externalBuffer) if getattr(tensor, "externalBuffer", 0) else ("buf", tensor.buffer)
            if not size or key in seen_buffers:
                continue
            seen_buffers.add(key)
            role = roles.get(i, "other")
            row.parameter_bytes += size
            by_role[role] += size
            dtype = TYPE_NAMES.get(tensor.type, "?")
            elements.setdefault(role, {}).setdefault(dtype, 0)
            elements[role][dtype] += math.prod(_shape(tensor))
        counts[op_name] = counts.get(op_name, 0) + 1
        if op_name in MAC_OPS:
            row.macs = _macs(op_name, op, subgraph)
        else:
            row.other_cost = _other_cost(op_name, op, subgraph)
            entry = other.setdefault(op_name, {"count": 0, "cost": 0})
            entry["count"] = int(entry["count"] or 0) + 1
            entry["cost"] = None if row.other_cost is None or entry["cost"] is None else entry["cost"] + row.other_cost
        rows.append(row)
    notes = []
    if len(model.subgraphs) > 1:
        notes.append(f"{len(model.subgraphs) - 1} further subgraph(s) not reached from the main graph were ignored")
    custom = sorted(n for n in counts if n.startswith("CUSTOM:"))
    if custom:
        notes.append(f"custom ops of unknown cost: {', '.join(custom)}")
    return Audit(name, len(data), rows, sum(by_role.values()), by_role, elements, sum(r.macs for r in rows), counts,
                 other, max_parameter_bytes, max_macs, notes)


def audit_file(path: str | Path, **limits: int) -> Audit:
    """`audit_tflite` of a file on disk."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AuditError(f"{path}: cannot read ({error.strerror or error})") from None
    return audit_tflite(data, path.name, **limits)


def format_audit(audit: Audit) -> str:
    """The per-op table (markdown) with totals, the other ops, and the verdict."""
    lines = [f"# Complexity of {audit.name}", "",
             "| # | op | input shapes | output shape | type | parameter bytes | MACs | other ops |",
             "|---:|---|---|---|---|---:|---:|---:|"]
    for r in audit.rows:
        shapes = " ".join("x".join(map(str, s)) or "scalar" for s in r.inputs)
        cost = "" if r.op in MAC_OPS else ("?" if r.other_cost is None else f"{r.other_cost:,}")
        lines.append(f"| {r.index} | {r.op} | {shapes} | {'x'.join(map(str, r.output))} | {r.dtype} | "
                     f"{r.parameter_bytes:,} | {r.macs:,} | {cost} |")
    lines += ["", f"Parameter bytes: {audit.parameter_bytes:,} (weights {audit.parameter_bytes_by_role['weights']:,}, "
              f"biases {audit.parameter_bytes_by_role['bias']:,}, other constants "
              f"{audit.parameter_bytes_by_role['other']:,})"]
    for role, per_type in audit.parameter_elements.items():
        lines.append(f"  {role}: " + ", ".join(f"{n:,} {t}" for t, n in sorted(per_type.items())))
    lines.append(f"MACs: {audit.macs:,} (" + ", ".join(
        f"{n} {op}" for op, n in audit.op_counts.items() if op in MAC_OPS) + ")")
    if audit.other_ops:
        lines.append("Other ops (not MACs; rough element operations): " + ", ".join(
            f"{op} x{v['count']} ({'?' if v['cost'] is None else format(v['cost'], ',')})"
            for op, v in audit.other_ops.items()))
    lines += [f"File: {audit.file_bytes:,} bytes", *audit.notes, "", audit.verdict()]
    return "\n".join(lines) + "\n"


@dataclass
class FrontendCost:
    """Arithmetic of the log-mel front end per clip: not counted by the challenge, paid by the device."""

    frames: int
    n_fft: int
    window_multiplies: int
    fft_butterflies: int  # ~ n/2 log2 n per real FFT, as the audit's RFFT2D estimate
    power_operations: int  # re^2 + im^2 per bin
    mel_macs: int  # banded: the non-zero weights only
    mel_macs_dense: int  # what a dense 2049 x n_mels product would cost
    log_operations: int
    mel_array_bytes: int  # the firmware's banded mel arrays

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def frontend_cost(sample_rate: int, n_fft: int, window_length: int, hop_length: int, n_mels: int, f_min: float,
                  f_max: Optional[float], samples: Optional[int] = None) -> FrontendCost:
    """The front end's arithmetic for one clip of `samples` (default: one second)."""
    from asc_tf.edge.mel import MelBands, mel_filterbank

    bands = MelBands.from_dense(mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max))
    frames = 1 + (samples or sample_rate) // hop_length
    bins = n_fft // 2 + 1
    return FrontendCost(frames, n_fft, frames * window_length, frames * (n_fft // 2) * int(math.log2(n_fft)),
                        frames * bins * 3, frames * len(bands.weights), frames * bins * n_mels, frames * n_mels,
                        bands.nbytes())


def format_frontend_cost(cost: FrontendCost) -> str:
    """Lines for the audit: the front end's arithmetic per clip, apart from the network's MACs."""
    return "\n".join([
        "Front end per clip (not counted by the challenge; the device computes it before the network):",
        f"  {cost.frames} frames: window {cost.window_multiplies:,} multiplies, FFT ({cost.n_fft} points) "
        f"~{cost.fft_butterflies:,} butterflies, power {cost.power_operations:,} operations",
        f"  mel {cost.mel_macs:,} MACs (banded; dense {cost.mel_macs_dense:,}), log {cost.log_operations:,}",
        f"  firmware mel arrays {cost.mel_array_bytes:,} bytes",
    ]) + "\n"
