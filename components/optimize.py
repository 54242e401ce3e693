"""Optimize components: turn a baseline (or an earlier candidate) into a candidate model.

``optimize`` runs any technique by name (the pipeline fans out over a technique list with
``dsl.ParallelFor``); the family components (``export_fp32``, ``quantize``, ``quantize_onnx``,
``prune``, ``cluster``) expose each family's main parameter as a typed input. Every component
writes a candidate directory (model file + ``candidate.json``) as its ``Model`` output and sets
the artifact metadata (technique chain, parameters, parent, stats) shown in the KFP UI.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kfedge._version import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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
            prune-cluster-int8, pqat-int8, cqat-int8 or pcqat-int8.
        model: The baseline, or a candidate from an earlier step (its stripped Keras model is
            used, so steps chain).
        dataset: The split dataset (train for fine-tuning, calibration for INT8).
        candidate: The candidate directory: deployable model file + candidate.json.
        params_json: Technique parameters as a JSON object (validated before any work).

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import apply

    cand = apply(technique, model.path, dataset.path, params_json, candidate.path)
    candidate.metadata.update(cand.kfp_metadata())
    return cand.name


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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
    from kfedge.techniques import apply_family

    cand = apply_family("export_fp32", model_format, model.path, None, params_json, candidate.path)
    candidate.metadata.update(cand.kfp_metadata())
    return cand.name


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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
    from kfedge.techniques import apply_family

    cand = apply_family("quantize", mode, model.path, dataset.path, params_json, candidate.path)
    candidate.metadata.update(cand.kfp_metadata())
    return cand.name


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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
    from kfedge.techniques import apply_family

    cand = apply_family(
        "quantize_onnx", mode, model.path, dataset.path, params_json, candidate.path
    )
    candidate.metadata.update(cand.kfp_metadata())
    return cand.name


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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
            {"epochs": 4}, {"quantize": "int8"}.

    Returns:
        Output: The candidate's name.
    """
    from kfedge.techniques import apply_family

    cand = apply_family(
        "prune",
        "prune",
        model.path,
        dataset.path,
        params_json,
        candidate.path,
        target_sparsity=target_sparsity,
    )
    candidate.metadata.update(cand.kfp_metadata())
    return cand.name


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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
    from kfedge.techniques import apply_family

    cand = apply_family(
        "cluster",
        "cluster",
        model.path,
        dataset.path,
        params_json,
        candidate.path,
        number_of_clusters=number_of_clusters,
    )
    candidate.metadata.update(cand.kfp_metadata())
    return cand.name
