"""KFP component ``optimize``: run any technique by name (the pipelines fan out over them)."""

from kfp.dsl import Dataset, Input, Model, Output

from kfedge.components import component


@component
def optimize(
    technique: str,
    model: Input[Model],
    dataset: Input[Dataset],
    candidate: Output[Model],
    params_json: str = "{}",
) -> str:
    """Apply one optimization technique and write the resulting candidate.

    Args:
        technique: Technique name: fp32-tflite, fp32-onnx, ptq-dynamic, ptq-fp16, ptq-int8,
            onnx-int8-static, onnx-int8-dynamic, onnx-fp16, qat-int8, prune, cluster,
            prune-cluster-int8, pqat-int8, cqat-int8, pcqat-int8 or channel-prune.
        model: The baseline, or a candidate from an earlier step (its stripped Keras model is
            used, so steps chain).
        dataset: The split dataset (train for fine-tuning, calibration for INT8).
        candidate: The candidate directory: deployable model file + candidate.json.
        params_json: Technique parameters as a JSON object (validated before any work).

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import optimize_into

    return optimize_into(candidate, technique, model, dataset, params_json)
