"""Importing upstream weights: .npz, torch `state_dict` (.pt) and Lightning (.ckpt) files, never running them.

The PyTorch files are written here without torch, in torch.save's zip layout (data.pkl with persistent
storage ids, data/<key> raw little-endian storages), so the reader is tested on the real format.
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import re
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

import asc_tf
from asc_tf import Config
from asc_tf.torch_import import CheckpointError, load_upstream_weights, main, network_state_dict, read_state_dict


def _fake_torch() -> dict[str, types.ModuleType]:
    """Stand-in `torch` / `torch._utils` modules so pickle can name torch's globals (writing only)."""
    torch, utils, tensor_mod = types.ModuleType("torch"), types.ModuleType("torch._utils"), types.ModuleType("torch._tensor")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - never called, only named
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    def _rebuild_from_type_v2(*args):  # pragma: no cover - never called, only named
        raise AssertionError

    _rebuild_from_type_v2.__module__, _rebuild_from_type_v2.__qualname__ = "torch._tensor", "_rebuild_from_type_v2"
    tensor_mod._rebuild_from_type_v2 = _rebuild_from_type_v2
    torch.Tensor = type("Tensor", (), {"__module__": "torch"})
    for name in ("FloatStorage", "HalfStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils, torch._tensor = utils, tensor_mod
    return {"torch": torch, "torch._utils": utils, "torch._tensor": tensor_mod}


class _Storage:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple, subclass: bool = False) -> None:
        self.args = (storage, offset, shape, stride, False, collections.OrderedDict())
        self.subclass = subclass

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        if self.subclass:  # how torch pickles tensors with Python state / subclasses
            return (sys.modules["torch._tensor"]._rebuild_from_type_v2,
                    (rebuild, sys.modules["torch"].Tensor, self.args, {}))
        return (rebuild, self.args)


class _Evil:
    """Pickles as a call of os.system: must never run when the checkpoint is read."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def write_torch_zip(path: Path, obj_fn, transpose_first: bool = False) -> None:
    """torch.save's zip layout for the object `obj_fn(tensor)` builds, tensors from numpy arrays."""
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils", "torch._tensor")}
    sys.modules.update(_fake_torch())
    try:
        storages: list[_Storage] = []
        dtypes = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float16): "HalfStorage",
                  np.dtype(np.int64): "LongStorage"}

        def tensor(array: np.ndarray) -> _Tensor:
            array = np.asarray(array)
            if transpose_first and array.ndim == 4:  # store a non-contiguous view (permuted strides)
                base = np.ascontiguousarray(np.transpose(array, (3, 2, 1, 0)))
                st = _Storage(str(len(storages)), base)
                storages.append(st)
                strides = tuple(s // base.itemsize for s in np.transpose(base, (3, 2, 1, 0)).strides)
                return _Tensor(st, 0, array.shape, strides)
            flat = np.ascontiguousarray(array).ravel()
            st = _Storage(str(len(storages)), np.concatenate([np.zeros(3, flat.dtype), flat]))  # offset 3
            storages.append(st)
            strides = tuple(s // max(flat.itemsize, 1) for s in np.ascontiguousarray(array).strides)
            return _Tensor(st, 3, array.shape, strides, subclass=len(storages) % 2 == 0)

        obj = obj_fn(tensor)

        class Pickler(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, _Storage):
                    kind = getattr(sys.modules["torch"], dtypes[o.array.dtype])
                    return ("storage", kind, o.key, "cpu", o.array.size)
                return None

        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(obj)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", buf.getvalue())
            archive.writestr("archive/byteorder", "little")
            archive.writestr("archive/version", "3\n")
            for st in storages:
                archive.writestr(f"archive/data/{st.key}", st.array.astype(st.array.dtype.newbyteorder("<")).tobytes())
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def upstream_state(golden: dict) -> dict[str, np.ndarray]:
    """The golden network state_dict (126 keys, with num_batches_tracked)."""
    return {k: v for k, v in golden.items() if k.startswith(("in_c.", "stages.", "feed_forward."))}


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, 2, 3, 1))


@pytest.fixture(scope="module")
def imported(golden, tmp_path_factory):
    """The golden .npz imported through the command line, reloaded."""
    import keras

    from conftest import golden_dir  # the shared fixtures' locator (honours $ASC_TF_GOLDEN_DIR)

    out = tmp_path_factory.mktemp("imp") / "golden.keras"
    src = golden_dir() / "upstream_golden.npz"
    assert main([str(src), "--out", str(out)]) == 0
    return keras.saving.load_model(out)


def test_npz_import_gives_upstream_logits(imported, golden):
    logits = imported.get_layer("network")(nhwc(golden["mel_log"]), training=False).numpy()
    assert np.abs(logits - golden["logits_eval"]).max() < 1e-4
    assert imported.get_layer("frontend") is not None


def test_state_dict_round_trip(imported, golden):
    state = network_state_dict(imported)
    expected = {k: v for k, v in upstream_state(golden).items() if not k.endswith("num_batches_tracked")}
    assert sorted(state) == sorted(expected) and len(state) == 105
    for key, value in expected.items():
        np.testing.assert_array_equal(state[key], value)


@pytest.mark.parametrize("transposed", [False, True])
def test_pt_state_dict(golden, tmp_path, transposed):
    path = tmp_path / "model_state_dict.pt"
    state = upstream_state(golden)
    # upstream's evaluate() saves the fp16 model
    write_torch_zip(path, lambda t: collections.OrderedDict(
        (k, t(v.astype(np.float16) if v.dtype == np.float32 else v)) for k, v in state.items()), transposed)
    read = read_state_dict(path)
    assert read.keys() == state.keys()
    np.testing.assert_array_equal(read["in_c.1.0.weight"], state["in_c.1.0.weight"].astype(np.float16))
    assert read["in_c.0.1.num_batches_tracked"].dtype == np.int64


def test_lightning_checkpoint_never_runs_code(golden, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "last.ckpt"
    state = upstream_state(golden)

    def build(t):
        sd = collections.OrderedDict((f"model.{k}", t(v)) for k, v in state.items())
        sd["mel.1.mel_scale.fb"] = t(golden["mel.1.mel_scale.fb"])
        return {"epoch": 149, "global_step": 81900, "pytorch-lightning_version": "2.6.6", "state_dict": sd,
                "callbacks": {"ModelCheckpoint": _Evil(marker)}, "optimizer_states": [], "lr_schedulers": []}

    write_torch_zip(path, build)
    model = asc_tf.build_model()
    load_upstream_weights(model, read_state_dict(path))
    assert not marker.exists()
    logits = model.get_layer("network")(nhwc(golden["mel_log"]), training=False).numpy()
    assert np.abs(logits - golden["logits_eval"]).max() < 1e-4


def test_mismatching_network_names_first_tensor(golden, tmp_path, capsys):
    big = asc_tf.build_model(Config(base_channels=40))
    path = tmp_path / "other.npz"
    np.savez(path, **network_state_dict(big))
    with pytest.raises(CheckpointError, match=r"^tensor in_c\.0\.0\.weight has shape \[10, 1, 3, 3\], "
                                              r"this network expects \[8, 1, 3, 3\]$"):
        load_upstream_weights(asc_tf.build_model(), read_state_dict(path))
    assert main([str(path), "--out", str(tmp_path / "x.keras")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in_c.0.0.weight" in err
    assert main([str(path), "--out", str(tmp_path / "y.keras"), "--base_channels", "40"]) == 0


def test_missing_and_extra_tensors(golden, tmp_path):
    state = upstream_state(golden)
    missing = {k: v for k, v in state.items() if not k.startswith("stages.s2.b5.block.1.1")}
    with pytest.raises(CheckpointError, match=r"tensor stages\.s2\.b5\.block\.1\.1\.weight missing"):
        load_upstream_weights(asc_tf.build_model(), missing)
    extra = dict(state, **{"stages.s3.b7.block.0.0.weight": np.zeros((1, 1, 1, 1), np.float32)})
    with pytest.raises(CheckpointError, match=r"stages\.s3\.b7\.block\.0\.0\.weight .* no place"):
        load_upstream_weights(asc_tf.build_model(), extra)


def test_corrupt_files(golden, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x80\x02not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch zip"):
        read_state_dict(junk)
    good = tmp_path / "good.pt"
    write_torch_zip(good, lambda t: {"in_c.0.0.weight": t(golden["in_c.0.0.weight"])})
    truncated = tmp_path / "truncated.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(truncated, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data[: len(data) // 2] if name.endswith(("data.pkl", "data/0")) else data)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(truncated))}: "):
        read_state_dict(truncated)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(bad_npz))}: "):
        read_state_dict(bad_npz)
    with pytest.raises(CheckpointError, match="unknown extension"):
        read_state_dict(tmp_path / "weights.h5")


def test_hostile_archive_is_refused_naming_the_file(tmp_path):
    """A zip whose data.pkl asks the unpickler for something no torch.save writes (here a persistent id that is
    not a storage): refused by the restricted unpickler, in one line naming the file."""
    class Hostile(pickle.Pickler):
        def persistent_id(self, obj):
            return ("os.system", "echo pwned") if isinstance(obj, bytes) else None

    buffer = io.BytesIO()
    Hostile(buffer, protocol=2).dump({"in_c.0.0.weight": b"x"})
    path = tmp_path / "hostile.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hostile/data.pkl", buffer.getvalue())
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: unsupported persistent id"):
        read_state_dict(path)


def test_failed_load_leaves_model_unchanged(golden):
    model = asc_tf.build_model()
    before = network_state_dict(model)
    state = dict(upstream_state(golden))
    state["feed_forward.0.weight"] = state["feed_forward.0.weight"][:, :, 0, 0]  # 2-D: wrong rank
    with pytest.raises(CheckpointError, match=r"tensor feed_forward\.0\.weight has shape \[10, 104\]"):
        load_upstream_weights(model, state)
    after = network_state_dict(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
