"""``onnx-int8-static``: ONNX Runtime static INT8 quantization (QDQ), calibrated."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from kfedge import compat
from kfedge.candidate import Candidate
from kfedge.errors import ModelFormatError
from kfedge.techniques import _onnx
from kfedge.techniques._base import (
    Source,
    TechniqueConfig,
    check_data,
    finish,
    resolve_source,
    staging,
    validate,
)

NAME = "onnx-int8-static"
DESCRIPTION = (
    "ONNX Runtime static INT8 quantization in QDQ format (per-channel weights by default), "
    "calibrated on the calibration split."
)
NEEDS_DATA = True

_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_TYPES = {"int8": "QInt8", "uint8": "QUInt8"}


class Config(TechniqueConfig):
    """Parameters of ``onnx-int8-static``."""

    per_channel: bool = Field(default=True, description="Per-channel weight scales.")
    calibrate_method: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax", description="How activation ranges are calibrated."
    )
    activation_type: Literal["int8", "uint8"] = Field(
        default="uint8", description="Activation integer type."
    )
    weight_type: Literal["int8", "uint8"] = Field(default="int8", description="Weight type.")
    calibration_samples: int = Field(default=256, ge=1, le=100_000)
    preprocess: bool = Field(
        default=True, description="Run ORT's quant_pre_process (shape inference, fusions) first."
    )
    opset: int = Field(default=17, ge=13, le=21, description="Opset of the ONNX export.")


def check(src: Source, data: str | Path | None, cfg: Config) -> None:
    """Refuse TFLite input and a missing calibration split."""
    _onnx.check_onnx_source(src, NAME)
    check_data(data, ("calibration",), f"{NAME} (static calibration)")


def apply(
    model_path: str | Path,
    data: str | Path | None,
    config: Config | dict[str, Any] | None,
    out_dir: str | Path,
) -> Candidate:
    """Quantize with ``onnxruntime.quantization.quantize_static`` (QDQ).

    Args:
        model_path: Candidate directory, ONNX model, or Keras model / SavedModel (exported).
        data: Split dataset directory with a calibration split.
        config: :class:`Config` or its dict.
        out_dir: Candidate directory to write.

    Returns:
        The candidate (``model.onnx``).
    """
    cfg = validate(Config, config, NAME)
    src = resolve_source(model_path)
    check(src, data, cfg)
    q = compat.require("onnxruntime.quantization")
    t0 = time.perf_counter()
    stats: dict[str, Any] = {}
    with staging(out_dir) as work:
        scratch = work / ".work"
        scratch.mkdir()
        fp32 = _onnx.fp32_onnx(src, scratch, cfg.opset)
        source = fp32
        stats["preprocessed"] = False
        if cfg.preprocess:
            pre = scratch / "pre.onnx"
            try:
                q.quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
                source, stats["preprocessed"] = pre, True
            except Exception as exc:  # ORT raises many types; quantization still works without
                stats["preprocess_error"] = str(exc)[:200]
        reader = _onnx.calibration_reader(source, Path(data), cfg.calibration_samples)
        try:
            q.quantize_static(
                str(source),
                str(work / "model.onnx"),
                reader,
                quant_format=q.QuantFormat.QDQ,
                per_channel=cfg.per_channel,
                activation_type=getattr(q.QuantType, _TYPES[cfg.activation_type]),
                weight_type=getattr(q.QuantType, _TYPES[cfg.weight_type]),
                calibrate_method=getattr(q.CalibrationMethod, _METHODS[cfg.calibrate_method]),
            )
        except Exception as exc:  # ORT raises many types
            raise ModelFormatError(f"{NAME}: quantize_static failed on {source}: {exc}") from exc
        shutil.rmtree(scratch)
        stats["calibration_samples"] = reader.count
        stats["op_counts"] = _onnx.op_counts(work / "model.onnx")
        stats["initializer_dtypes"] = _onnx.initializer_dtypes(work / "model.onnx")
        return finish(
            work,
            src=src,
            own_name=NAME,
            steps=NAME,
            config=cfg,
            model_file="model.onnx",
            stats=stats,
            started=t0,
        )
