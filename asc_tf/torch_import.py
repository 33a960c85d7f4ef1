"""Import upstream (PyTorch) CP-Mobile weights into the Keras model, without torch and without running pickles.

Sources: a Lightning checkpoint (`.ckpt`, weights under `state_dict` with a `model.` prefix), a saved
`state_dict` (`.pt`, e.g. upstream's `model_state_dict.pt`), or a `.npz` of upstream names to arrays.
The PyTorch zip format is read with a restricted unpickler: only tensor-rebuild functions, storages and
OrderedDict resolve; any other global becomes an inert placeholder, so no code from the file ever runs.

    python -m asc_tf.torch_import SRC --out MODEL.keras [--base_channels ...]
"""

from __future__ import annotations

import argparse
import sys
import collections
import io
import logging
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from asc_tf import console
from asc_tf.config import Config, add_arguments, from_args

if TYPE_CHECKING:  # Keras loads with the first model (`--help` answers without TensorFlow)
    import keras

log = logging.getLogger(__name__)

LIGHTNING_PREFIX = "model."
NETWORK_PREFIXES = ("in_c.", "stages.", "feed_forward.")  # other keys (front-end buffers, golden extras) are ignored
MODEL_FLAGS = (
    "n_classes", "in_channels", "base_channels", "channels_multiplier", "expansion_rate", "n_blocks", "strides",
    "sample_rate", "window_length", "hop_length", "n_fft", "n_mels", "freqm", "timem", "f_min", "f_max",
    "mixstyle_p", "mixstyle_alpha",
)


class CheckpointError(ValueError):
    """The file is not a readable upstream checkpoint, or holds another network."""


_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    """Stand-in for `torch.FloatStorage` etc.: only carries the numpy dtype."""

    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


class _Opaque:
    """Inert placeholder for a global the allow-list does not know: records arguments, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _opaque_class(module: str, name: str) -> type:
    return type(f"Opaque[{module}.{name}]", (_Opaque,), {})


def _as_strided(storage: np.ndarray, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    span = 1 + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if offset < 0 or offset + span > storage.size or any(s < 0 for s in stride):
        raise CheckpointError("tensor view lies outside its storage: corrupt checkpoint")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(s * item for s in stride), writeable=False)
    return np.array(view)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if not isinstance(storage, np.ndarray):
        raise CheckpointError("tensor without a storage: corrupt checkpoint")
    return _as_strided(storage, int(offset), size, stride)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _rebuild_from_type(func: Any, _new_type: Any, args: tuple, _state: Any) -> Any:
    """torch._tensor._rebuild_from_type_v2: `func` was resolved through the allow-list too."""
    if func not in (_rebuild_tensor, _rebuild_parameter) and not (isinstance(func, type) and issubclass(func, _Opaque)):
        raise CheckpointError("unexpected tensor rebuild function in checkpoint")
    return func(*args)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): tuple,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler of a torch zip's `data.pkl`: allow-listed globals only, storages read from the zip."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, byteorder: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        log.debug("checkpoint global %s.%s replaced by an inert placeholder", module, name)
        return _opaque_class(module, name)

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id in checkpoint: {str(pid)[:80]}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unsupported storage type in checkpoint: {storage_type!r}")
        if key not in self._storages:
            try:
                raw = self._archive.read(f"{self._prefix}data/{key}")
            except KeyError as err:
                raise CheckpointError(f"storage {key} missing from the archive: corrupt checkpoint") from err
            self._storages[key] = _decode_storage(raw, storage_type.dtype, self._byteorder)
        return self._storages[key]


def _decode_storage(raw: bytes, dtype: Any, byteorder: str) -> np.ndarray:
    order = "<" if byteorder == "little" else ">"
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype=f"{order}u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    dt = np.dtype(dtype).newbyteorder(order) if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    if len(raw) % dt.itemsize:
        raise CheckpointError("storage size is not a multiple of its element size: corrupt checkpoint")
    return np.frombuffer(raw, dtype=dt).astype(np.dtype(dtype).newbyteorder("="))


def read_torch_zip(path: Path) -> Any:
    """The object `torch.save` wrote to `path` (zip format), tensors as numpy arrays."""
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a PyTorch zip archive (legacy torch.save formats are not supported)")
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if not pkl:
                raise CheckpointError(f"{path}: no data.pkl in the archive: not a PyTorch checkpoint")
            prefix = pkl[0][: -len("data.pkl")]
            names = set(archive.namelist())
            byteorder = archive.read(f"{prefix}byteorder").decode().strip() if f"{prefix}byteorder" in names else "little"
            return _RestrictedUnpickler(archive.read(pkl[0]), archive, prefix, byteorder).load()
    except CheckpointError as error:  # raised inside the unpickler, which does not know the file
        raise CheckpointError(str(error) if str(error).startswith(str(path)) else f"{path}: {error}") from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, KeyError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err})") from err


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Upstream network weights (upstream names -> arrays) from a `.ckpt`, `.pt` or `.npz` file."""
    path = Path(path)
    if path.suffix not in (".npz", ".ckpt", ".pt", ".pth"):
        raise CheckpointError(f"{path}: unknown extension {path.suffix!r} (expected .ckpt, .pt, .pth or .npz)")
    if not path.is_file():
        raise CheckpointError(f"{path}: file does not exist" if not path.exists() else f"{path}: not a file")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise CheckpointError(f"{path}: unreadable .npz ({err})") from err
    elif path.suffix in (".ckpt", ".pt", ".pth"):
        state = read_torch_zip(path)
    else:
        raise CheckpointError(f"{path}: unknown extension {path.suffix!r} (expected .ckpt, .pt, .pth or .npz)")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # Lightning checkpoint
        state = {k[len(LIGHTNING_PREFIX):]: v for k, v in state["state_dict"].items() if k.startswith(LIGHTNING_PREFIX)}
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state_dict of tensors")
    return dict(state)


def _torch_to_keras(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":  # [O, I, kh, kw] -> [kh, kw, I, O]
        return np.transpose(array, (2, 3, 1, 0))
    if kind == "depthwise":  # [C, 1, kh, kw] -> [kh, kw, C, 1]
        return np.transpose(array, (2, 3, 0, 1))
    return array


def _keras_to_torch(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == "conv":  # [kh, kw, I, O] -> [O, I, kh, kw]
        return np.transpose(array, (3, 2, 0, 1))
    if kind == "depthwise":  # [kh, kw, C, 1] -> [C, 1, kh, kw]
        return np.transpose(array, (2, 3, 0, 1))
    return array


def _layer_tensors(layer: keras.layers.Layer) -> list[tuple[str, str, keras.Variable]]:
    """(upstream suffix, layout kind, variable) of a conv or BN layer, in upstream's state_dict order."""
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [("weight", "depthwise", layer.kernel)]
    if isinstance(layer, keras.layers.Conv2D):
        return [("weight", "conv", layer.kernel)]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [("weight", "", layer.gamma), ("bias", "", layer.beta),
                ("running_mean", "", layer.moving_mean), ("running_var", "", layer.moving_variance)]
    raise ValueError(f"layer {layer.name!r} of type {type(layer).__name__} has no upstream counterpart")


def _network(model: keras.Model) -> keras.Model:
    from asc_tf.model import NETWORK_NAME

    try:
        return model.get_layer(NETWORK_NAME)
    except ValueError:
        return model


def network_state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """The network's weights under upstream names and layouts (the inverse of `load_upstream_weights`)."""
    from asc_tf.model import upstream_names

    network, out = _network(model), {}
    for layer_name, path in upstream_names(network).items():
        for suffix, kind, var in _layer_tensors(network.get_layer(layer_name)):
            out[f"{path}.{suffix}"] = _keras_to_torch(np.asarray(var.numpy(), dtype=np.float32), kind)
    return out


def load_upstream_weights(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Set the network's weights from an upstream state_dict; CheckpointError names the first mismatch.

    Every tensor is checked before any is assigned, so a failed load leaves the model unchanged.
    """
    from asc_tf.model import upstream_names

    network = _network(model)
    plan: list[tuple[keras.Variable, np.ndarray]] = []
    for layer_name, path in upstream_names(network).items():
        for suffix, kind, var in _layer_tensors(network.get_layer(layer_name)):
            key = f"{path}.{suffix}"
            if key not in state:
                raise CheckpointError(f"tensor {key} missing from the checkpoint: another network?")
            want = list(_keras_to_torch(np.empty(var.shape, np.int8), kind).shape)
            got = list(np.shape(state[key]))
            if got != want:
                raise CheckpointError(f"tensor {key} has shape {got}, this network expects {want}")
            plan.append((var, _torch_to_keras(np.asarray(state[key]), kind)))
    known = {f"{path}.{suffix}" for layer_name, path in upstream_names(network).items()
             for suffix, _, _ in _layer_tensors(network.get_layer(layer_name))}
    extra = [k for k in state if k.startswith(NETWORK_PREFIXES) and k not in known and not k.endswith("num_batches_tracked")]
    if extra:
        raise CheckpointError(f"tensor {extra[0]} of the checkpoint has no place in this network: another network?")
    for var, value in plan:
        var.assign(value.astype(var.dtype))


def check_out(out: str | Path, overwrite: bool = False) -> Path:
    """The `.keras` path to write: refused when it has another suffix or exists and `overwrite` is not given."""
    out = Path(out)
    if out.suffix != ".keras":
        raise CheckpointError(f"--out must end in .keras, got {out}")
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out} exists: pass --overwrite to replace it")
    return out


def import_checkpoint(src: str | Path, out: str | Path, config: Optional[Config] = None,
                      state: Optional[dict[str, np.ndarray]] = None, overwrite: bool = False) -> keras.Model:
    """Build the model of `config`, load upstream weights from `src` (or `state`, already read from it), save it
    as `.keras` at `out` (atomically; an existing file only with `overwrite`)."""
    from asc_tf.model import build_model
    from asc_tf.training.runs import save_atomic

    out = check_out(out, overwrite)
    state = read_state_dict(src) if state is None else state
    model = build_model(config)
    try:
        load_upstream_weights(model, state)
    except CheckpointError as error:
        raise CheckpointError(f"{src}: {error}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(model, out)
    log.info("wrote %s", out)
    return model


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.torch_import", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="upstream .ckpt (Lightning), .pt (state_dict) or .npz (upstream names)")
    parser.add_argument("--out", required=True, help="the .keras file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_arguments(parser, MODEL_FLAGS)
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    console.setup(args.verbose)
    try:  # the file is read (numpy only) before TensorFlow loads: a wrong or missing file is refused in a second
        check_out(args.out, args.overwrite)
        state = read_state_dict(args.src)
        console.import_tensorflow()
        import_checkpoint(args.src, args.out, from_args(args), state=state, overwrite=args.overwrite)
    except (CheckpointError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
