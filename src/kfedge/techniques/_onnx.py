"""The ONNX Runtime family: the FP32 ONNX source, the shared transform, op counts, calibration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from kfedge import compat
from kfedge.cpu import OrtInt8Settings, known_isa, ort_int8_settings, parse_isa
from kfedge.errors import ModelFormatError
from kfedge.formats import KERAS_FORMATS, detect_format
from kfedge.fsutil import remove_path
from kfedge.techniques._base import Source, TechniqueConfig, load_xy
from kfedge.techniques._declare import Technique


class OnnxConfig(TechniqueConfig):
    """Fields of every ONNX Runtime technique."""

    opset: int = Field(default=17, ge=13, le=21, description="Opset of the ONNX export.")


#: Config value -> ``onnxruntime.quantization.QuantType`` member.
QUANT_TYPES = {"int8": "QInt8", "uint8": "QUInt8"}


class IsaConfig(OnnxConfig):
    """Fields of the ONNX Runtime INT8 techniques: the CPU the model will run on."""

    isa: str | None = Field(
        default=None,
        description="Instruction set of the CPU the model will run on (x86-64-avx2, "
        "x86-64-avx512-vnni, arm64, host...); provision sets the target's. None: any x86-64.",
    )
    reduce_range: bool | None = Field(
        default=None,
        description="7-bit weights; None: chosen for isa (on wherever VNNI is not known).",
    )

    _known_isa = field_validator("isa")(known_isa)


def int8_settings(cfg: Any) -> OrtInt8Settings:
    """The ``reduce_range`` setting for a config's ``isa`` (or its explicit ``reduce_range``)."""
    auto = ort_int8_settings(parse_isa(cfg.isa) if cfg.isa else None, cfg.weight_type)
    if cfg.reduce_range is None:
        return auto
    return OrtInt8Settings(cfg.reduce_range, auto.isa, "set by the reduce_range parameter")


class OnnxTechnique(Technique):
    """A technique that rewrites an FP32 ONNX model (the given one, or a tf2onnx export).

    A subclass declares itself and overrides :meth:`rewrite`.
    """

    output_format = "onnx"
    family = "quantize_onnx"
    group = "PTQ"
    Config = OnnxConfig

    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Refuse TFLite input."""
        check_onnx_source(src, self.name)

    def rewrite(self, fp32: Path, out: Path, data: Path | None, cfg: Any) -> dict[str, Any]:
        """Write the optimized model of ``fp32`` to ``out``; return stats of the run."""
        raise NotImplementedError

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Export to FP32 ONNX when needed (into a scratch folder), then :meth:`rewrite`."""
        scratch = work / ".work"
        scratch.mkdir()
        try:
            fp32 = fp32_onnx(src, scratch, cfg.opset)
            try:
                return self.rewrite(fp32, work / self.model_file, data, cfg)
            except ModelFormatError:
                raise
            except Exception as exc:  # ORT / onnx raise many types
                raise ModelFormatError(f"{self.name} failed on {fp32}: {exc}") from exc
        finally:
            remove_path(scratch)


def onnx_stats(path: str | Path) -> dict[str, Any]:
    """Op counts and initializer dtypes of an ONNX model."""
    return {"op_counts": op_counts(path), "initializer_dtypes": initializer_dtypes(path)}


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


#: ONNX ops that hold the weights of a layer (what ``keep_float`` leaves in float).
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def weighted_nodes(path: str | Path) -> list[str]:
    """Names of the weighted nodes (Conv, MatMul, Gemm...) in graph (topological) order."""
    model = compat.onnx().load(str(path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name]


def kept_float(path: str | Path, keep: str) -> list[str]:
    """Nodes ``keep`` (``none``, ``first``, ``last``, ``first_last``) leaves in float."""
    nodes = weighted_nodes(path)
    if keep == "none" or not nodes:
        return []
    out = [nodes[0]] if keep in ("first", "first_last") else []
    if keep in ("last", "first_last") and nodes[-1] not in out:
        out.append(nodes[-1])
    return out


#: Offline graph optimization levels kfedge saves (``all`` is left out: its layout
#: transformations, e.g. NCHWc blocking, are specific to the CPU that ran them).
OFFLINE_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}


def optimize_offline(src: Path, dest: Path, level: str) -> dict[str, Any]:
    """Write ONNX Runtime's graph-optimized form of ``src`` (``level``) to ``dest``.

    ONNX Runtime applies these optimizations itself whenever it loads a model, so the saved
    form saves load time; whether it changes inference time is for the benchmark to measure.
    Up to ``extended`` the result holds standard and ``com.microsoft`` ops that every CPU build
    of ONNX Runtime runs, independent of the instruction set.

    Returns:
        What was done, for ``candidate.json``.
    """
    ort = compat.require("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OFFLINE_LEVELS[level])
    opts.optimized_model_filepath = str(dest)
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    return {"level": level, "onnxruntime": ort.__version__}


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
