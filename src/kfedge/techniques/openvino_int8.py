"""``openvino-int8``: NNCF post-training INT8 quantization of an OpenVINO IR, calibrated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.techniques._base import Source, check_data
from kfedge.techniques._openvino import (
    NncfConfig,
    OpenVinoTechnique,
    calibration_items,
    nncf_options,
    top1_validation,
)


class Config(NncfConfig):
    """Parameters of ``openvino-int8``."""

    max_accuracy_drop: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Accuracy-aware mode: NNCF keeps the layers that cost most accuracy in "
        "float until the top-1 drop on the calibration split is at most this (a fraction: "
        "0.005 = half a point). None: plain post-training quantization.",
    )


class OpenVinoInt8(
    OpenVinoTechnique, name="openvino-int8", quant_mode="int8", needs_data=True, rank=82
):
    """NNCF post-training INT8 quantization of the OpenVINO IR, calibrated on the calibration split.

    Preset performance (symmetric) or mixed, fast bias correction, 7-bit weights where the CPU
    may lack VNNI, optional first / last layer in float, and an accuracy-aware mode that keeps
    layers in float until the drop on the calibration split is within a bound.
    """

    Config = Config

    def check(self, src: Source, data: str | Path | None, cfg: Config) -> None:
        """Refuse unconvertible input and a missing calibration split."""
        super().check(src, data, cfg)
        check_data(data, ("calibration",), f"{self.name} (NNCF calibration)")

    def build(self, model: Any, data: Path | None, cfg: Config) -> tuple[Any, dict[str, Any]]:
        """Quantize with ``nncf.quantize`` (or ``quantize_with_accuracy_control``)."""
        nncf = compat.require("nncf")
        x, y = calibration_items(Path(data), cfg.calibration_samples)  # type: ignore[arg-type]
        items = [(x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
        dataset = nncf.Dataset(items, lambda item: item[0])
        kwargs, stats = nncf_options(model, cfg)
        advanced = stats.pop("advanced")
        try:
            if cfg.max_accuracy_drop is None:
                quantized = nncf.quantize(
                    model,
                    dataset,
                    subset_size=len(items),
                    advanced_parameters=advanced,
                    **kwargs,
                )
            else:
                quantized = nncf.quantize_with_accuracy_control(
                    model,
                    dataset,
                    dataset,
                    top1_validation,
                    max_drop=cfg.max_accuracy_drop,
                    drop_type=nncf.DropType.ABSOLUTE,
                    subset_size=len(items),
                    advanced_quantization_parameters=advanced,
                    **kwargs,
                )
        except Exception as exc:  # NNCF raises many types
            raise ModelFormatError(f"{self.name}: NNCF quantization failed: {exc}") from exc
        stats.update(
            calibration_samples=len(items),
            preset=cfg.preset,
            accuracy_control=cfg.max_accuracy_drop is not None,
        )
        if cfg.max_accuracy_drop is not None:
            fp32 = compat.openvino().compile_model(model, "CPU")
            q8 = compat.openvino().compile_model(quantized, "CPU")
            stats["calibration_top1"] = {
                "fp32": round(top1_validation(fp32, items)[0], 5),
                "int8": round(top1_validation(q8, items)[0], 5),
            }
        return quantized, stats
