"""KFP component ``cluster``: weight clustering to k centroids per kernel, fine-tuned, exported."""

from kfp.dsl import Dataset, Input, Model, Output

from kfedge.components import component


@component
def cluster(
    model: Input[Model],
    dataset: Input[Dataset],
    candidate: Output[Model],
    number_of_clusters: int = 16,
    params_json: str = "{}",
) -> str:
    """Cluster weights to k centroids per kernel, fine-tune, strip, and export to TFLite.

    A pruned input keeps its zeros (sparsity-preserving clustering).

    Args:
        model: The baseline or a candidate with a tf_keras model (e.g. a prune candidate).
        dataset: The split dataset (train split for fine-tuning).
        candidate: The clustered candidate (model.tflite + keras/model.keras + candidate.json).
        number_of_clusters: Centroids per kernel (k >= 2).
        params_json: More parameters as a JSON object, e.g. {"centroid_init": "linear"}.

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import optimize_into

    return optimize_into(
        candidate,
        "cluster",
        model,
        dataset,
        params_json,
        family="cluster",
        number_of_clusters=number_of_clusters,
    )
