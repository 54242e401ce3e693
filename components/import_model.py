"""KFP component ``import_model``: bring a model from storage into a pipeline as a candidate."""

from kfp.dsl import Model, Output

from kfedge.components import component


@component
def import_model(
    uri: str,
    model: Output[Model],
    s3_endpoint: str = "",
    accelerator_type: str = "",
    accelerator_count: str = "0",
) -> str:
    """Bring a model from storage into the pipeline as a candidate (for edge-evaluate).

    Args:
        uri: Path, file:// or s3:// URI of a .tflite, .onnx, .keras, .h5, SavedModel or a
            candidate directory written by kfedge.
        model: The model as a candidate directory.
        s3_endpoint: S3 endpoint URL for s3:// URIs; empty = from the environment, else (in a
            pod) KFP's own object store.
        accelerator_type: Not used by this step: it carries the provision output into the
            ParallelFor sub-DAG, where the evaluate step requests the target's accelerator.
        accelerator_count: Likewise, the accelerator count.

    Returns:
        The candidate's name. A model that cannot be imported becomes a failed candidate
        (its one-line reason recorded, kfedge.failure): the loop goes on without it.
    """
    from pathlib import PurePosixPath

    from kfedge.failure import isolated
    from kfedge.provision import import_model_to

    name = PurePosixPath(uri.rstrip("/")).stem or uri
    return isolated(
        lambda: import_model_to(uri, model, s3_endpoint), model, name, "import", "import"
    )
