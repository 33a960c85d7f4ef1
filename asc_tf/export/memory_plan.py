"""An offline memory plan for TensorFlow Lite Micro, written into the int8 network's flatbuffer as the
`OfflineMemoryAllocation` metadata, so that the tensor arena is close to the largest set of tensors alive at once.

TFLite Micro's greedy planner places the activations by size, first fit, and needs 210,944 B for the baseline
network whose largest live set is 174,080 B. Here the packing is searched over several orders (deterministic),
and an elementwise ADD writes its output over an input that dies there (safe: every ADD kernel, reference and
CMSIS-NN, reads element i of both inputs before writing element i). TFLite Micro reads the metadata in
`AllocationInfoBuilder::GetOfflinePlannedOffsets` (micro_allocation_info.cc): a buffer of int32
`[version 1, subgraph 0, number of tensors, offset of each tensor or -1]`, offsets from the start of the arena's
planned (head) region; scratch buffers stay online and the greedy planner fits them into the plan's gaps.
Written by hand because no library computes such a plan from a `.tflite` (TFLite Micro only reads it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import flatbuffers
import numpy as np

try:  # LiteRT's generated schema (fast to import); TensorFlow's copy otherwise
    from ai_edge_litert import schema_py_generated as schema
except ImportError:  # pragma: no cover
    from tensorflow.lite.python import schema_py_generated as schema  # type: ignore[no-redef]

METADATA_NAME = "OfflineMemoryAllocation"
ONLINE = -1  # kOnlinePlannedBuffer: TFLite Micro plans the tensor itself
ALIGNMENT = 16  # MicroArenaBufferAlignment(): every planned buffer starts and is sized on 16 bytes
BUFFER_ALIGNMENT = 16  # the converter's alignment of constant buffers, kept when the flatbuffer is rewritten
_ELEMENT_BYTES = {schema.TensorType.INT8: 1, schema.TensorType.UINT8: 1, schema.TensorType.INT16: 2,
                  schema.TensorType.INT32: 4, schema.TensorType.FLOAT32: 4, schema.TensorType.FLOAT16: 2,
                  schema.TensorType.INT64: 8, schema.TensorType.BOOL: 1}
_IN_PLACE_OPS = ("ADD",)  # elementwise, same-shape: output element i depends on input element i only
_SEARCH_ORDERS = 400  # random orders tried after the fixed ones (seeded: the plan is reproducible)


class MemoryPlanError(ValueError):
    """A model this planner cannot plan (several subgraphs, dynamic shapes)."""


@dataclass
class Activation:
    """A tensor TFLite Micro places in the arena: its size (aligned) and lifetime in allocation scopes."""

    tensor: int
    size: int
    first: int
    last: int
    shares_with: Optional[int] = None  # in place: the input tensor whose memory it reuses


@dataclass
class MemoryPlan:
    """Offsets per tensor (ONLINE for the ones not planned), the planned bytes and the lower bound."""

    offsets: list[int]
    planned_bytes: int
    largest_live_set: int
    in_place: list[tuple[int, int]]  # (output tensor, input tensor) pairs sharing memory

    def to_dict(self) -> dict:
        return {"planner": "asc_tf.export.memory_plan (OfflineMemoryAllocation metadata)",
                "planned_bytes": self.planned_bytes, "largest_live_set": self.largest_live_set,
                "in_place_ops": len(self.in_place),
                "note": "the arena's planned region for the activations; TFLite Micro adds its own structures "
                        "and the kernels' scratch buffers (planned online into the gaps)"}


def _op_names(model) -> list[str]:
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    return [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM") for c in model.operatorCodes]


def activations(model) -> tuple[list[Activation], int]:
    """The tensors TFLite Micro plans, with its lifetimes (MarkAllocationLifetimes: subgraph inputs at scope 0,
    op i at scope i + 1, subgraph outputs kept to the last op); and the number of tensors of the subgraph."""
    if len(model.subgraphs) != 1:
        raise MemoryPlanError(f"{len(model.subgraphs)} subgraphs: the offline plan covers single-subgraph models")
    graph = model.subgraphs[0]
    ops = _op_names(model)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in graph.inputs:
        first.setdefault(int(t), 0)
        last[int(t)] = 0
    for scope, op in enumerate(graph.operators, start=1):
        for t in op.outputs:
            first.setdefault(int(t), scope)
        for t in list(op.inputs) + list(op.outputs):
            if t >= 0:
                last[int(t)] = scope
    for t in graph.outputs:
        first.setdefault(int(t), len(graph.operators))
        last[int(t)] = len(graph.operators)
    planned = []
    for index, tensor in enumerate(graph.tensors):
        data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
        if (data is not None and len(data)) or tensor.isVariable or index not in first:
            continue
        shape = tensor.shape if tensor.shape is not None else []
        if any(int(d) < 0 for d in shape) or tensor.type not in _ELEMENT_BYTES:
            raise MemoryPlanError(f"tensor {index} has a dynamic shape or an unknown type: no offline plan")
        size = int(np.prod(shape, dtype=np.int64)) * _ELEMENT_BYTES[tensor.type]
        if size:
            planned.append(Activation(index, -(-size // ALIGNMENT) * ALIGNMENT, first[index], last[index]))
    by_tensor = {a.tensor: a for a in planned}
    outputs = {int(t) for t in graph.outputs} | {int(t) for t in graph.inputs}
    for scope, op in enumerate(graph.operators, start=1):
        if ops[op.opcodeIndex] not in _IN_PLACE_OPS or len(op.outputs) != 1:
            continue
        out = by_tensor.get(int(op.outputs[0]))
        for t in op.inputs:
            source = by_tensor.get(int(t))
            if out and source and source.last == scope and source.size == out.size and source.tensor not in outputs \
                    and list(graph.tensors[source.tensor].shape) == list(graph.tensors[out.tensor].shape) \
                    and not any(a.shares_with == source.tensor for a in planned):
                out.shares_with = source.tensor
                break
    return planned, len(graph.tensors)


def largest_live_set(planned: list[Activation]) -> int:
    """The most bytes alive at one scope (in-place pairs counted once): no plan can use less."""
    end = max(a.last for a in planned)
    return max(sum(a.size for a in planned if a.first <= s <= a.last and a.shares_with is None) +
               sum(a.size for a in planned if a.shares_with is not None and a.first < s <= a.last)
               for s in range(end + 1))


def _blocks(planned: list[Activation]) -> list[tuple[int, int, int, list[int]]]:
    """(size, first, last, tensors) per block of memory: an in-place output joins its input's block."""
    root = {a.tensor: a.tensor for a in planned}
    for a in planned:
        if a.shares_with is not None:
            root[a.tensor] = root[a.shares_with]
    groups: dict[int, list[Activation]] = {}
    for a in planned:
        groups.setdefault(root[a.tensor], []).append(a)
    return [(max(a.size for a in g), min(a.first for a in g), max(a.last for a in g), [a.tensor for a in g])
            for g in groups.values()]


def _place(blocks, order: list[int], best_fit: bool) -> tuple[int, list[int]]:
    """Place blocks in `order` at the lowest (first fit) or tightest (best fit) gap among the blocks alive at
    the same time; returns (peak, offsets)."""
    offsets = [0] * len(blocks)
    placed: list[int] = []
    peak = 0
    for i in order:
        size, first, last, _ = blocks[i]
        busy = sorted((offsets[j], offsets[j] + blocks[j][0]) for j in placed
                      if blocks[j][1] <= last and first <= blocks[j][2])
        gaps, cursor = [], 0
        for start, end in busy:
            if start - cursor >= size:
                gaps.append((start - cursor, cursor))
            cursor = max(cursor, end)
        gaps.append((1 << 40, cursor))  # after everything: always fits
        offsets[i] = min(gaps)[1] if best_fit else gaps[0][1]
        placed.append(i)
        peak = max(peak, offsets[i] + size)
    return peak, offsets


def plan(model) -> MemoryPlan:
    """The smallest packing found over fixed orders (size, start, lifetime) and seeded random ones."""
    planned, n_tensors = activations(model)
    blocks = _blocks(planned)
    n = len(blocks)
    orders = [sorted(range(n), key=lambda i: (-blocks[i][0], blocks[i][1])),
              sorted(range(n), key=lambda i: (blocks[i][1], -blocks[i][0])),
              sorted(range(n), key=lambda i: (-(blocks[i][2] - blocks[i][1]), -blocks[i][0])),
              sorted(range(n), key=lambda i: (-blocks[i][0] * (blocks[i][2] - blocks[i][1] + 1), blocks[i][1]))]
    rng = random.Random(0)
    for _ in range(_SEARCH_ORDERS):
        order = list(range(n))
        rng.shuffle(order)
        orders.append(order)
    best = min((_place(blocks, order, fit) for order in orders for fit in (False, True)), key=lambda r: r[0])
    offsets = [ONLINE] * n_tensors
    for (_, _, _, tensors), offset in zip(blocks, best[1]):
        for t in tensors:
            offsets[t] = offset
    pairs = [(a.tensor, a.shares_with) for a in planned if a.shares_with is not None]
    return MemoryPlan(offsets, best[0], largest_live_set(planned), pairs)


class _AlignedBuffer(schema.BufferT):
    """A constant buffer packed on BUFFER_ALIGNMENT bytes, as the converter wrote it (the generated Pack uses 1)."""

    def Pack(self, builder):
        data = None
        if self.data is not None:
            raw = bytes(np.asarray(self.data, np.uint8).tobytes())
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def with_offline_plan(model_bytes: bytes) -> tuple[bytes, MemoryPlan]:
    """The model with its offline plan in the `OfflineMemoryAllocation` metadata (replacing an earlier one), and
    the plan. Operators, tensors and constant data are unchanged."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    result = plan(model)
    words = np.array([1, 0, len(result.offsets)] + result.offsets, "<i4")
    entry = next((m for m in (model.metadata or []) if m.name in (METADATA_NAME, METADATA_NAME.encode())), None)
    if entry is None:  # a new buffer and metadata entry; an earlier plan's buffer is overwritten instead
        model.buffers.append(schema.BufferT())
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata = list(model.metadata or []) + [entry]
    model.buffers[entry.buffer].data = np.frombuffer(words.tobytes(), np.uint8)
    for i, b in enumerate(model.buffers):
        aligned = _AlignedBuffer()
        aligned.data, aligned.offset, aligned.size = b.data, b.offset, b.size
        model.buffers[i] = aligned
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), result


def read_offline_plan(model_bytes: bytes) -> Optional[list[int]]:
    """The offsets of a model's `OfflineMemoryAllocation` metadata as TFLite Micro reads them, or None."""
    model = schema.Model.GetRootAs(model_bytes, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            words = model.Buffers(entry.Buffer()).DataAsNumpy().view("<i4")
            if int(words[0]) != 1 or int(words[1]) != 0 or int(words[2]) != len(words) - 3:
                raise MemoryPlanError(f"{METADATA_NAME}: header {words[:3].tolist()} is not [1, 0, tensors]")
            return [int(v) for v in words[3:]]
    return None
