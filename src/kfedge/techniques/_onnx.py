"""Helpers shared by the ONNX Runtime techniques: the FP32 ONNX source, op counts, calibration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.formats import KERAS_FORMATS, detect_format
from kfedge.techniques._base import Source, load_xy


def check_onnx_source(src: Source, purpose: str) -> str:
    """Accept an ONNX model, or a Keras model / SavedModel that is exported first."""
    fmt = detect_format(src.path)
    if fmt != "onnx" and fmt not in KERAS_FORMATS:
        raise ModelFormatError(
            f"{purpose} needs an ONNX model or a Keras model / SavedModel to export, but "
            f"{src.path} is a {fmt} file"
        )
    return fmt


def fp32_onnx(src: Source, work: Path, opset: int) -> Path:
    """The FP32 ONNX model to quantize: the given one, or a tf2onnx export into ``work``."""
    if detect_format(src.path) == "onnx":
        return src.path
    from kfedge.convert import convert_onnx

    return convert_onnx(src.path, work / "fp32.onnx", opset)


def op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each op type the ONNX graph holds."""
    model = compat.onnx().load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def initializer_dtypes(path: str | Path) -> dict[str, int]:
    """Count of initializers (weights) per element type name."""
    onnx = compat.onnx()
    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for init in model.graph.initializer:
        name = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def input_name(path: str | Path) -> str:
    """Name of the model's single input (ONNX graph inputs minus initializers)."""
    model = compat.onnx().load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ModelFormatError(
            f"ONNX calibration supports single-input models; {path} has inputs {names}"
        )
    return names[0]


def calibration_reader(model: Path, data: Path, samples: int, batch: int = 16) -> Any:
    """An ORT ``CalibrationDataReader`` over the calibration split."""
    q = compat.require("onnxruntime.quantization")
    x, _ = load_xy(data, "calibration", samples)
    name = input_name(model)

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(
                {name: x[i : i + batch]} for i in range(0, len(x), batch)
            )
            self.count = int(len(x))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    return Reader()
