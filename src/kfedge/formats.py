"""Detect and check model formats without importing any framework.

Formats: ``keras`` (.keras zip), ``h5`` (legacy Keras HDF5), ``savedmodel`` (directory),
``tflite`` (flatbuffer), ``onnx`` (protobuf) and ``openvino`` (IR: ``model.xml`` with its
``model.bin`` beside it).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from kfedge.errors import ModelFormatError

FORMATS = ("keras", "h5", "savedmodel", "tflite", "onnx", "openvino")
#: Formats a deployable candidate (and the model server) uses.
DEPLOYABLE = ("tflite", "onnx", "openvino")
#: Formats that hold a Keras model which tfmot techniques can start from.
KERAS_FORMATS = ("keras", "h5", "savedmodel")

_EXPECTED = (
    "a .keras or .h5 Keras file, a SavedModel directory (with saved_model.pb), "
    "a .tflite flatbuffer, a .onnx model or an OpenVINO IR .xml (with its .bin)"
)
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _describe(head: bytes) -> str:
    if not head:
        return "an empty file"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive without a Keras config.json"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON/text file"
    printable = sum(32 <= b < 127 for b in head[:64]) / max(1, len(head[:64]))
    return "a text file" if printable > 0.9 else f"unrecognised bytes {head[:8]!r}"


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint) => tag byte 0x08, small version.
    return len(head) >= 2 and head[0] == 0x08 and 0 < head[1] < 64


def detect_format(path: str | Path) -> str:
    """Return the format of the model at ``path`` after checking its signature bytes.

    Args:
        path: A model file or a SavedModel directory.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        ModelFormatError: The path is missing, empty, corrupt or of no known format.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFormatError(f"model not found: {p} (expected {_EXPECTED})")
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise ModelFormatError(
            f"{p} is a directory without saved_model.pb; expected a SavedModel directory "
            f"or {_EXPECTED}"
        )
    with p.open("rb") as fh:
        head = fh.read(64)
    suffix = p.suffix.lower()
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(p) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile as exc:
            raise ModelFormatError(
                f"{p} is a corrupt zip archive ({exc}); expected {_EXPECTED}"
            ) from exc
        if "config.json" in names:
            return "keras"
    if head.lstrip().startswith(b"<?xml") or suffix == ".xml":
        with p.open("rb") as fh:
            text = fh.read(4096)
        if b"<net " in text:
            if not p.with_suffix(".bin").is_file():
                raise ModelFormatError(
                    f"{p} is an OpenVINO IR without its weights file {p.with_suffix('.bin').name}"
                )
            return "openvino"
    if suffix == ".onnx" or _looks_like_onnx(head):
        if _looks_like_onnx(head):
            return "onnx"
    found = _describe(head)
    if suffix in (".tflite", ".onnx", ".keras", ".h5", ".hdf5"):
        raise ModelFormatError(
            f"{p} has the suffix {suffix} but its content is {found}, not a valid "
            f"{suffix.lstrip('.')} model (the file is corrupt or mislabelled)"
        )
    raise ModelFormatError(f"{p} is {found}; expected {_EXPECTED}")


def require_format(path: str | Path, allowed: tuple[str, ...], purpose: str) -> str:
    """Detect the format and refuse formats that ``purpose`` cannot take.

    Args:
        path: Model path.
        allowed: Accepted formats.
        purpose: What the model is for, used in the message (e.g. "pruning").

    Returns:
        The detected format.
    """
    fmt = detect_format(path)
    if fmt not in allowed:
        raise ModelFormatError(
            f"{purpose} needs a model in one of {', '.join(allowed)}, but {path} is {fmt}"
        )
    return fmt


def model_size_bytes(path: str | Path) -> int:
    """Bytes of a model file (an OpenVINO IR ``.xml`` with its ``.bin``), or of a SavedModel."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    weights = p.with_suffix(".bin")
    if p.suffix.lower() == ".xml" and weights.is_file():
        return p.stat().st_size + weights.stat().st_size
    return p.stat().st_size
