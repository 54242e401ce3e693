"""The OpenVINO family: IR conversion, the shared transform, stats, NNCF calibration data.

OpenVINO candidates are an IR pair, ``model.xml`` (the graph) with ``model.bin`` (the weights)
beside it. The IR is converted with ``openvino.convert_model`` from an ONNX model: the given
one, or kfedge's tf2onnx export of a Keras model / SavedModel (the same FP32 ONNX the ONNX
Runtime candidates start from, so the two runtimes are compared on one graph). A ``.tflite``
FP32 model is converted by OpenVINO's TFLite frontend directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from kfedge import compat
from kfedge.cpu import Isa, known_isa, parse_isa
from kfedge.errors import ModelFormatError
from kfedge.formats import KERAS_FORMATS, detect_format
from kfedge.fsutil import remove_path
from kfedge.techniques._base import Source, TechniqueConfig, load_xy
from kfedge.techniques._declare import Technique
from kfedge.techniques._onnx import fp32_onnx

#: The IR graph inside an OpenVINO candidate directory (``model.bin`` lies beside it).
MODEL_XML = "model.xml"
#: Formats OpenVINO techniques start from.
SOURCE_FORMATS = ("onnx", "tflite", *KERAS_FORMATS)

KeepFloat = Literal["none", "first", "last", "first_last"]


class OpenVinoConfig(TechniqueConfig):
    """Fields of every OpenVINO technique."""

    opset: int = Field(
        default=17, ge=13, le=21, description="Opset of the ONNX export of a Keras model."
    )


class OpenVinoTechnique(Technique):
    """A technique that writes an OpenVINO IR (``model.xml`` + ``model.bin``).

    A subclass declares itself and overrides :meth:`build` (what to do with the FP32 IR) and
    may set :attr:`compress_to_fp16`.
    """

    output_format = "openvino"
    group = "PTQ"
    Config = OpenVinoConfig
    #: Whether ``ov.save_model`` stores float weights as float16.
    compress_to_fp16 = False

    @property
    def model_file(self) -> str:
        """``model.xml`` (its weights are ``model.bin`` beside it)."""
        return MODEL_XML

    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Accept ONNX, FP32 TFLite, Keras models and SavedModels; refuse the rest."""
        fmt = detect_format(src.path)
        if fmt not in SOURCE_FORMATS:
            raise ModelFormatError(
                f"{self.name} needs an ONNX, TFLite or Keras model / SavedModel to convert to "
                f"OpenVINO IR, but {src.path} is a {fmt} model"
            )

    def build(self, model: Any, data: Path | None, cfg: Any) -> tuple[Any, dict[str, Any]]:
        """Return the model to save (from the FP32 ``ov.Model``) and stats of the run."""
        return model, {}

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Convert to an FP32 IR (through ONNX for Keras models), :meth:`build`, save."""
        ov = compat.openvino()
        scratch = work / ".work"
        scratch.mkdir()
        try:
            fmt = detect_format(src.path)
            source = src.path if fmt == "tflite" else fp32_onnx(src, scratch, cfg.opset)
            try:
                model = ov.convert_model(str(source))
            except Exception as exc:  # OpenVINO frontends raise many types
                raise ModelFormatError(
                    f"{self.name}: OpenVINO could not convert {source}: {exc}"
                ) from exc
            model, stats = self.build(model, data, cfg)
            ov.save_model(model, str(work / MODEL_XML), compress_to_fp16=self.compress_to_fp16)
            return {
                **stats,
                "converted_from": "tflite" if fmt == "tflite" else "onnx",
                "openvino_version": ov.get_version(),
            }
        finally:
            remove_path(scratch)

    def output_stats(self, path: Path) -> dict[str, Any]:
        """Op counts and weight element types of the written IR."""
        return openvino_stats(path)


def openvino_stats(path: str | Path) -> dict[str, Any]:
    """Op counts and weight (Constant) element types of an OpenVINO IR.

    Returns:
        ``op_counts`` (op type -> nodes, Constants left out) and ``weight_dtypes`` (element
        type -> Constants), e.g. ``{"i8": 53, "f32": 160}`` for an INT8 IR.
    """
    ov = compat.openvino()
    model = ov.Core().read_model(str(path))
    ops: dict[str, int] = {}
    dtypes: dict[str, int] = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant":
            et = op.get_output_element_type(0).get_type_name()
            dtypes[et] = dtypes.get(et, 0) + 1
        elif kind not in ("Parameter", "Result"):
            ops[kind] = ops.get(kind, 0) + 1
    return {"op_counts": dict(sorted(ops.items())), "weight_dtypes": dict(sorted(dtypes.items()))}


# -- NNCF --------------------------------------------------------------------------------------
class NncfConfig(OpenVinoConfig):
    """Fields of the NNCF post-training INT8 techniques."""

    calibration_samples: int = Field(
        default=300, ge=1, le=100_000, description="Calibration samples (NNCF subset_size)."
    )
    preset: Literal["performance", "mixed"] = Field(
        default="performance",
        description="performance: symmetric activations (fastest); mixed: asymmetric "
        "activations (more accurate after non-ReLU activations).",
    )
    fast_bias_correction: bool = Field(
        default=False,
        description="NNCF's fast bias correction; False (default): the full one, slower to "
        "calibrate but more accurate (sample: 0.6 point drop with the fast one, none without).",
    )
    target_device: Literal["any", "cpu", "gpu", "npu"] = Field(
        default="any", description="Device NNCF fits the quantization scheme to."
    )
    isa: str | None = Field(
        default=None,
        description="Instruction set of the CPU the model will run on (x86-64-avx2, "
        "x86-64-avx512-vnni, arm64...); decides overflow_fix 'auto'. Provision sets the "
        "target's. None: any x86-64.",
    )
    overflow_fix: Literal["auto", "enable", "first_layer", "disable"] = Field(
        default="auto",
        description="7-bit weights against int16 saturation on x86 CPUs without VNNI: all "
        "layers (enable), the first (first_layer, NNCF's default) or none; auto: enable where "
        "VNNI is not known, disable on VNNI and Arm.",
    )
    keep_float: KeepFloat = Field(
        default="none",
        description="Keep the first / last weighted layer (Conv, MatMul) in float.",
    )

    _known_isa = field_validator("isa")(known_isa)


def overflow_fix(cfg: Any) -> tuple[str, str]:
    """NNCF's ``overflow_fix`` for a config, and why (``(value, reason)``)."""
    if cfg.overflow_fix != "auto":
        return cfg.overflow_fix, "set by the overflow_fix parameter"
    isa = parse_isa(cfg.isa) if cfg.isa else Isa("x86-64")
    if isa.arch != "x86-64":
        return "disable", f"{isa.name}: int8 dot products do not saturate in int16"
    if isa.vnni:
        return "disable", f"{isa.name}: VNNI accumulates u8 x s8 products in int32"
    return "enable", (
        f"{isa.name} (VNNI not known to be present): AVX2 int8 kernels add u8 x s8 pairs in "
        "saturating int16; 7-bit weights avoid it"
    )


def weighted_layers(model: Any) -> list[str]:
    """Friendly names of the weighted layers (Convolution / MatMul...) in graph order."""
    kinds = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"}
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in kinds]


def kept_float(model: Any, keep: str) -> list[str]:
    """Names of the layers ``keep`` (``first``, ``last``, ``first_last``) leaves in float."""
    layers = weighted_layers(model)
    if keep == "none" or not layers:
        return []
    out = []
    if keep in ("first", "first_last"):
        out.append(layers[0])
    if keep in ("last", "first_last") and layers[-1] not in out:
        out.append(layers[-1])
    return out


def nncf_options(model: Any, cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments shared by ``nncf.quantize`` and its accuracy-aware variant.

    Returns:
        ``(kwargs, stats)``: the arguments (without the advanced parameters' keyword, whose
        name differs between the two calls: ``stats["advanced"]`` holds the object) and what
        was chosen, for ``candidate.json``.
    """
    nncf = compat.require("nncf")
    adv = compat.require("nncf.quantization.advanced_parameters")
    fix, why = overflow_fix(cfg)
    members = {"enable": "ENABLE", "first_layer": "FIRST_LAYER", "disable": "DISABLE"}
    advanced = adv.AdvancedQuantizationParameters(
        overflow_fix=getattr(adv.OverflowFix, members[fix])
    )
    kept = kept_float(model, cfg.keep_float)
    kwargs: dict[str, Any] = {
        "preset": getattr(nncf.QuantizationPreset, cfg.preset.upper()),
        "target_device": getattr(nncf.TargetDevice, cfg.target_device.upper()),
        "fast_bias_correction": cfg.fast_bias_correction,
    }
    if kept:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=kept)
    stats = {
        "int8_settings": {"overflow_fix": fix, "isa": cfg.isa or "x86-64", "reason": why},
        "kept_float": kept,
        "advanced": advanced,
    }
    return kwargs, stats


def calibration_items(data: Path, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The calibration split's first ``samples`` images (float32) and labels."""
    x, y = load_xy(data, "calibration", samples)
    return np.asarray(x, dtype=np.float32), np.asarray(y)


def top1_validation(compiled: Any, items: Any) -> tuple[float, list[float]]:
    """NNCF ``validation_fn``: top-1 accuracy over ``(x, y)`` items, and each item's hit."""
    out = compiled.output(0)
    hits: list[float] = []
    for x, y in items:
        pred = np.asarray(compiled(x)[out]).reshape(len(x), -1).argmax(axis=1)
        hits.extend(float(h) for h in (pred == np.asarray(y).reshape(-1)))
    return (float(np.mean(hits)) if hits else 0.0), hits
