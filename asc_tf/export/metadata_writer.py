"""Runs in the metadata venv (requirements-metadata.txt: tflite-support), not beside TensorFlow:

    python -m asc_tf.export.metadata_writer write DIR   # DIR/in/*.tflite + card.json + labels.txt -> DIR/out/*.tflite
    python -m asc_tf.export.metadata_writer read MODEL  # the metadata and associated files as one JSON line

Called by `asc_tf.export.metadata`; standard library, tflite-support and libusb-package only.

tflite-support's two native modules link libusb-1.0.so.0, which slim containers and fresh Debian/Ubuntu machines do
not have (and a non-root user cannot install); libusb-package ships that library as a wheel, so the writer loads it
first (by its soname the dynamic linker then resolves tflite-support's dependency to it) and needs no system package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LABELS = "labels.txt"


def preload_libusb() -> str:
    """Load libusb-package's libusb-1.0 globally, before tflite-support's native modules need it; its path."""
    import ctypes

    import libusb_package

    path = str(libusb_package.get_library_path())
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    return path


preload_libusb()
from tflite_support import metadata as _metadata  # noqa: E402  (needs libusb-1.0, loaded just above)
from tflite_support.metadata_writers import audio_classifier, metadata_info, writer_utils  # noqa: E402


def write(work: Path) -> None:
    card = json.loads((work / "card.json").read_text())
    (work / "out").mkdir(exist_ok=True)
    for model in sorted((work / "in").glob("*.tflite")):
        buffer = model.read_bytes()
        general = metadata_info.GeneralMd(name=card["name"], version=card["version"], description=card["description"],
                                          author=card["author"], licenses=card["licence"])
        audio = metadata_info.InputAudioTensorMd(name="audio", description=card["input_description"],
                                                 sample_rate=card["sample_rate"], channels=card["channels"])
        scores = metadata_info.ClassificationTensorMd(
            name="probabilities", description=card["output_description"],
            label_files=[metadata_info.LabelFileMd(str(work / LABELS))],
            tensor_type=writer_utils.get_output_tensor_types(buffer)[0])
        writer = audio_classifier.MetadataWriter.create_from_metadata_info(buffer, general, audio, scores)
        (work / "out" / model.name).write_bytes(writer.populate())


def read(model: Path) -> dict:
    displayer = _metadata.MetadataDisplayer.with_model_file(str(model))
    files = {name: displayer.get_associated_file_buffer(name).decode("utf-8")
             for name in displayer.get_packed_associated_file_list()}
    return {"metadata": json.loads(displayer.get_metadata_json()), "files": files}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("write", "read"):
        print("usage: python -m asc_tf.export.metadata_writer write DIR | read MODEL", file=sys.stderr)
        return 2
    if argv[0] == "write":
        write(Path(argv[1]))
    else:
        print(json.dumps(read(Path(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
