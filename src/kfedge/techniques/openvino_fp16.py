"""``openvino-fp16``: OpenVINO IR with float16 (compressed) weights."""

from __future__ import annotations

from kfedge.techniques._openvino import OpenVinoTechnique


class OpenVinoFp16(OpenVinoTechnique, name="openvino-fp16", quant_mode="fp16", rank=84):
    """OpenVINO IR with float16 weights (half the size; GPU / NPU compute in float16).

    On CPUs OpenVINO expands the weights to float32 when it compiles the model (bfloat16 where
    the CPU has AMX), so the gain there is size, not speed.
    """

    compress_to_fp16 = True
