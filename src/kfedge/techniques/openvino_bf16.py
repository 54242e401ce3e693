"""``openvino-bf16``: the FP32 OpenVINO IR computed in bfloat16, on CPUs that have it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfedge.runners.openvino import PRECISION_RT_INFO
from kfedge.techniques._openvino import OpenVinoTechnique


class OpenVinoBf16(
    OpenVinoTechnique,
    name="openvino-bf16",
    quant_mode="fp32",
    group=None,
    rank=85,
    needs_isa="x86-64-bf16",
):
    """FP32 OpenVINO IR that asks OpenVINO's CPU plugin to compute in bfloat16 (AVX512_BF16 / AMX).

    The weights stay FP32; the IR carries ``INFERENCE_PRECISION_HINT=bf16`` in its
    ``runtime_options``, which kfedge's runner and the model server honour (every other IR is
    computed in f32, whatever the CPU). Planned only for targets whose profile states an ``isa``
    with ``bf16``; on a node without bfloat16 OpenVINO computes in f32 and the evaluation's
    ``runtime.precision`` says so.
    """

    def build(self, model: Any, data: Path | None, cfg: Any) -> tuple[Any, dict[str, Any]]:
        """Mark the FP32 IR to be computed in bfloat16."""
        model.set_rt_info("bf16", PRECISION_RT_INFO)
        return model, {"inference_precision": "bf16"}
