"""KFP component ``quantize``: TFLite post-training quantization (dynamic, fp16, INT8) or QAT."""

from kfp.dsl import Dataset, Input, Model, Output

from kfedge.components import component


@component
def quantize(
    model: Input[Model],
    dataset: Input[Dataset],
    candidate: Output[Model],
    mode: str = "ptq-int8",
    params_json: str = "{}",
) -> str:
    """Quantize to a TFLite candidate: post-training (dynamic, fp16, full INT8) or QAT.

    Args:
        model: The baseline or a candidate (pruned / clustered candidates chain).
        dataset: The split dataset (calibration split for ptq-int8, train split for QAT).
        candidate: The quantized candidate directory (model.tflite + candidate.json).
        mode: ptq-dynamic, ptq-fp16, ptq-int8 or qat-int8.
        params_json: Parameters as a JSON object, e.g. {"io_dtype": "uint8"} for Edge TPU IO.

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import optimize_into

    return optimize_into(candidate, mode, model, dataset, params_json, family="quantize")
