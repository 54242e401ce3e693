"""KFP component ``prune``: magnitude pruning to a target sparsity, fine-tuned and exported."""

from kfp.dsl import Dataset, Input, Model, Output

from kfedge.components import component


@component
def prune(
    model: Input[Model],
    dataset: Input[Dataset],
    candidate: Output[Model],
    target_sparsity: float = 0.5,
    params_json: str = "{}",
) -> str:
    """Prune by magnitude to a target sparsity, fine-tune, strip, and export to TFLite.

    Args:
        model: The baseline or a candidate with a tf_keras model.
        dataset: The split dataset (train split for fine-tuning).
        candidate: The pruned candidate (model.tflite + keras/model.keras + candidate.json).
        target_sparsity: Fraction of each pruned kernel set to zero (0 < s < 1).
        params_json: More parameters as a JSON object, e.g. {"sparsity_m_by_n": [2, 4]},
            {"block_size": [1, 4]} (zeros in whole blocks of 4 input channels), {"epochs": 4},
            {"quantize": "int8"}.

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import optimize_into

    return optimize_into(
        candidate,
        "prune",
        model,
        dataset,
        params_json,
        family="prune",
        target_sparsity=target_sparsity,
    )
