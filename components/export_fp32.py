"""KFP component ``export_fp32``: the FP32 reference of a runtime (TFLite or ONNX), unoptimized."""

from kfp.dsl import Input, Model, Output

from kfedge.components import component


@component
def export_fp32(
    model: Input[Model],
    candidate: Output[Model],
    model_format: str = "tflite",
    params_json: str = "{}",
    keep_deployable: bool = False,
    target: str = "",
) -> str:
    """Export the model without optimization: the FP32 reference of its runtime.

    Args:
        model: The baseline (Keras file or SavedModel; Keras 3 accepted) or a candidate.
        candidate: The FP32 candidate directory (model.tflite or model.onnx + candidate.json).
        model_format: tflite or onnx.
        params_json: Extra parameters as a JSON object (onnx: opset).
        keep_deployable: Keep a model the edge runtime already runs (.tflite, .onnx, OpenVINO)
            as it is; export only Keras / SavedModel models (both keep their own name).
        target: Target profile: when given, export to its preferred FP32 format instead of
            ``model_format`` (a pipeline parameter, usable inside a ParallelFor).

    Returns:
        Output: The candidate's name.
    """
    from kfedge.reference import export_fp32_into

    return export_fp32_into(
        candidate, model, model_format, params_json, keep_deployable=keep_deployable, target=target
    )
