"""KFP component ``quantize_onnx``: ONNX Runtime quantization (static QDQ, dynamic, float16)."""

from kfp.dsl import Dataset, Input, Model, Output

from kfedge.components import component


@component
def quantize_onnx(
    model: Input[Model],
    dataset: Input[Dataset],
    candidate: Output[Model],
    mode: str = "onnx-int8-static",
    params_json: str = "{}",
) -> str:
    """Quantize to an ONNX Runtime candidate (static QDQ, dynamic, or float16).

    Args:
        model: An ONNX candidate, the baseline or a Keras candidate (exported with tf2onnx).
        dataset: The split dataset (calibration split for static quantization).
        candidate: The quantized candidate directory (model.onnx + candidate.json).
        mode: onnx-int8-static, onnx-int8-dynamic or onnx-fp16.
        params_json: Parameters as a JSON object, e.g. {"per_channel": false}.

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import optimize_into

    return optimize_into(candidate, mode, model, dataset, params_json, family="quantize_onnx")
