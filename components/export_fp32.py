"""KFP component ``export_fp32``: the FP32 reference of a runtime (TFLite or ONNX), unoptimized."""

from kfp.dsl import Input, Model, Output

from kfedge.components import component


@component
def export_fp32(
    model: Input[Model],
    candidate: Output[Model],
    model_format: str = "tflite",
    params_json: str = "{}",
) -> str:
    """Export the model without optimization: the FP32 reference of its runtime.

    Args:
        model: The baseline (Keras file or SavedModel; Keras 3 accepted) or a candidate.
        candidate: The FP32 candidate directory (model.tflite or model.onnx + candidate.json).
        model_format: tflite or onnx.
        params_json: Extra parameters as a JSON object (onnx: opset).

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import optimize_into

    return optimize_into(candidate, model_format, model, None, params_json, family="export_fp32")
