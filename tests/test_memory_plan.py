"""The offline memory plan (asc_tf.export.memory_plan) written into the int8 network: checked independently of
the planner (no two tensors alive at once overlap, except an ADD's output over the input that dies there), read
back as TFLite Micro reads it, and the rewritten flatbuffer computes what the original does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asc_tf.export import memory_plan as mp


@pytest.fixture(scope="module")
def planned(int8_export):
    path = Path(int8_export.path) / int8_export.manifest["files"]["network"]["path"]
    return path.read_bytes(), int8_export.manifest


def _strip_plan(model_bytes: bytes) -> bytes:
    """The same model without the plan (the converter's output, re-serialised), to compare outputs."""
    import flatbuffers

    model = mp.schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    model.metadata = [m for m in model.metadata if m.name not in (mp.METADATA_NAME, mp.METADATA_NAME.encode())]
    builder = flatbuffers.Builder(len(model_bytes))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_export_writes_the_plan_tflite_micro_reads(planned):
    model_bytes, manifest = planned
    offsets = mp.read_offline_plan(model_bytes)
    model = mp.schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    assert offsets is not None and len(offsets) == len(model.subgraphs[0].tensors)
    acts, _ = mp.activations(model)
    planned_tensors = {a.tensor for a in acts}
    # every activation has an offset on 16 bytes; every constant is left to TFLite Micro (-1)
    assert all(offsets[t] >= 0 and offsets[t] % mp.ALIGNMENT == 0 for t in planned_tensors)
    assert all(o == mp.ONLINE for t, o in enumerate(offsets) if t not in planned_tensors)
    section = manifest["memory_plan"]
    assert section["planned_bytes"] == max(offsets[a.tensor] + a.size for a in acts)
    assert section["largest_live_set"] <= section["planned_bytes"]
    assert section["firmware_arena"]["bytes"] <= 200_000


def test_no_live_tensors_overlap_except_in_place_adds(planned):
    """Checked from the flatbuffer alone: at every allocation scope, the byte ranges of the tensors alive then are
    disjoint, but for an ADD's output placed exactly over an input whose last use is that ADD (same shape)."""
    model_bytes, _ = planned
    offsets = mp.read_offline_plan(model_bytes)
    model = mp.schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    acts, _ = mp.activations(model)
    graph = model.subgraphs[0]
    ops = mp._op_names(model)
    allowed = set()
    for scope, op in enumerate(graph.operators, start=1):
        if ops[op.opcodeIndex] == "ADD":
            allowed |= {(int(op.outputs[0]), int(t)) for t in op.inputs}
    shared = 0
    for i, a in enumerate(acts):
        for b in acts[i + 1:]:
            if a.first > b.last or b.first > a.last:
                continue
            ra = (offsets[a.tensor], offsets[a.tensor] + a.size)
            rb = (offsets[b.tensor], offsets[b.tensor] + b.size)
            if ra[0] < rb[1] and rb[0] < ra[1]:
                pair = (b.tensor, a.tensor) if (b.tensor, a.tensor) in allowed else (a.tensor, b.tensor)
                assert pair in allowed and ra == rb, f"tensors {a.tensor} and {b.tensor} overlap while both alive"
                source = a if pair[1] == a.tensor else b
                assert source.last == (b if source is a else a).first, "in place over an input still used later"
                shared += 1
    assert shared >= 1  # the baseline's residual ADDs do run in place


def test_plan_reaches_the_largest_live_set(planned):
    """The baseline's plan is the largest set of tensors alive at once (174,080 B): no packing can do better."""
    _, manifest = planned
    section = manifest["memory_plan"]
    assert section["planned_bytes"] == section["largest_live_set"], section


def test_rewritten_model_keeps_alignment_and_outputs(planned):
    """Constant buffers stay on 16 bytes (as the converter wrote them), and LiteRT's reference kernels give the
    same int8 outputs with and without the plan."""
    from asc_tf.export.runtime import TFLiteModel

    model_bytes, _ = planned
    model = mp.schema.Model.GetRootAs(model_bytes, 0)
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            start = buffer._tab.Vector(buffer._tab.Offset(4))
            assert start % mp.BUFFER_ALIGNMENT == 0, f"buffer {i} at {start}"
    with_plan = TFLiteModel(model_bytes, reference_kernels=True)
    without = TFLiteModel(_strip_plan(model_bytes), reference_kernels=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.integers(-128, 128, (1, 256, 65, 1), dtype=np.int8)
        np.testing.assert_array_equal(with_plan.run_raw(x), without.run_raw(x))


def test_plan_is_replaced_not_stacked(planned):
    model_bytes, _ = planned
    again, plan = mp.with_offline_plan(model_bytes)
    model = mp.schema.ModelT.InitFromPackedBuf(bytearray(again), 0)
    names = [m.name.decode() if isinstance(m.name, bytes) else m.name for m in model.metadata]
    assert names.count(mp.METADATA_NAME) == 1
    assert mp.read_offline_plan(again) == plan.offsets == mp.read_offline_plan(model_bytes)
