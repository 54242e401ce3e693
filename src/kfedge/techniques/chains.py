"""The chained techniques: each is its sequence of stages (see :mod:`._chain`)."""

from __future__ import annotations

from kfedge.techniques._chain import Chain


class PruneClusterInt8(
    Chain,
    name="prune-cluster-int8",
    stages=("prune", "cluster", "ptq-int8"),
    name_format="prune{prune}-cluster{clusters}-int8",
    rank=120,
):
    """Deep-compression chain: magnitude pruning, sparsity-preserving clustering, INT8.

    Full-integer INT8 calibrated on the calibration split.
    """


class PqatInt8(
    Chain, name="pqat-int8", stages=("prune", "qat"), name_format="pqat{prune}-int8", rank=130
):
    """Magnitude pruning, then pruning-preserving QAT (PQAT); full-integer INT8 TFLite.

    tfmot's Default8BitPrunePreserveQuantizeScheme keeps the zeros through quantization.
    """


class CqatInt8(
    Chain, name="cqat-int8", stages=("cluster", "qat"), name_format="cqat{clusters}-int8", rank=140
):
    """Weight clustering, then cluster-preserving QAT (CQAT); full-integer INT8 TFLite.

    tfmot's Default8BitClusterPreserveQuantizeScheme keeps the clusters through quantization.
    """


class PcqatInt8(
    Chain,
    name="pcqat-int8",
    stages=("prune", "cluster", "qat"),
    name_format="pcqat{prune}-{clusters}-int8",
    rank=150,
):
    """Pruning, sparsity-preserving clustering, then PCQAT; full-integer INT8 TFLite.

    Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True) keeps zeros and clusters.
    """
