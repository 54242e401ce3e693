"""``fp32-openvino``: plain FP32 OpenVINO IR, the reference of the OpenVINO candidates."""

from __future__ import annotations

from kfedge.techniques._openvino import OpenVinoTechnique


class Fp32OpenVino(
    OpenVinoTechnique,
    name="fp32-openvino",
    family="export_fp32",
    family_mode="openvino",
    group=None,
    rank=25,
):
    """FP32 OpenVINO IR (model.xml + model.bin) converted from the FP32 ONNX export.

    The OpenVINO reference: OpenVINO candidates are compared with it.
    """
