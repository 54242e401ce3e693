"""``qat-int8``: quantization-aware training (tfmot), exported as full-integer INT8 TFLite.

``quantize_model`` inserts fake-quant ops, the model is fine-tuned on the train split, and the
TFLite converter turns the learned ranges into an INT8 model. On a pruned and/or clustered
input (``preserve: auto``) the collaborative-optimization schemes keep its zeros / clusters:
``Default8BitPrunePreserveQuantizeScheme`` (PQAT), ``Default8BitClusterPreserveQuantizeScheme``
(CQAT) and ``Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)`` (PCQAT).
Layers tfmot's schemes do not list get their output quantized only instead of a refusal:
weightless ones (``Rescaling``, ``Multiply``) and ones with weights (a standalone
``BatchNormalization`` no convolution folds, ``LayerNormalization``, ``PReLU``), whose weights
stay in float; the converter may keep such an op in float (the QAT export allows float
fallback), with the layers around it INT8. ``candidate.json`` names them
(``stats.output_only_layers``, ``stats.float_weight_layers``). A Keras 3 model is
rebuilt in tf_keras first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.techniques._base import (
    FineTuneConfig,
    IoDtype,
    Source,
    export_tflite,
    fine_tune,
    load_tunable,
    measured_sparsity,
)
from kfedge.techniques._tfmot import KerasTechnique

Preserve = Literal["none", "sparsity", "clusters", "sparsity+clusters"]


class Config(FineTuneConfig):
    """Parameters of ``qat-int8``."""

    epochs: int = Field(default=3, ge=1, le=200)
    learning_rate: float = Field(default=1e-4, gt=0, le=0.1)
    io_dtype: IoDtype = Field(default="float32", description="Model input/output type.")
    preserve: Literal["auto", "none", "sparsity", "clusters", "sparsity+clusters"] = Field(
        default="auto",
        description="What the QAT scheme keeps; auto: from the input's chain and sparsity.",
    )


def resolve_preserve(preserve: str, chain: str, model: Any) -> Preserve:
    """Turn ``auto`` into what the input needs: its chain, else measured sparsity."""
    if preserve != "auto":
        return preserve  # type: ignore[return-value]
    steps = chain.split(">") if chain else []
    pruned = "prune" in steps or measured_sparsity(model) >= 0.3
    clustered = "cluster" in steps
    if pruned and clustered:
        return "sparsity+clusters"
    if pruned:
        return "sparsity"
    return "clusters" if clustered else "none"


class Quantized(NamedTuple):
    """Result of :func:`qat_model`."""

    model: Any
    stats: dict[str, Any]


def _scheme(preserve: Preserve) -> Any:
    """The tfmot quantize scheme that keeps what ``preserve`` names."""
    tfmot = compat.tfmot()
    combine = tfmot.experimental.combine
    return {
        "none": lambda: tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme(),
        "sparsity": lambda: combine.Default8BitPrunePreserveQuantizeScheme(),
        "clusters": lambda: combine.Default8BitClusterPreserveQuantizeScheme(False),
        "sparsity+clusters": lambda: combine.Default8BitClusterPreserveQuantizeScheme(True),
    }[preserve]()


def output_only_layers(model: Any) -> list[str]:
    """Layers tfmot's 8-bit registry cannot quantize, by name: their output alone is quantized.

    tfmot's whole-model annotation refuses a layer its registry does not list: weightless ones
    (``Rescaling``, ``Multiply``) and ones with weights (a standalone ``BatchNormalization``
    that no convolution folds, ``LayerNormalization``, ``PReLU``). Quantizing only their
    output (a learned range, as for activations) lets the layers after them run INT8; the
    layer itself computes in float, its weights (if any) kept in float (:func:`float_layers`
    names those). The collaborative schemes build on the same registry (theirs answer
    ``supports()`` with True for any layer).
    """
    registry = _scheme("none").get_quantize_registry()
    keras = compat.keras()
    return [
        layer.name
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
        and not registry.supports(layer)
        and not _folded(layer, keras)
    ]


#: Convolutions whose following BatchNormalization tfmot's layout transforms fold into them.
_FOLDING = ("Conv2D", "DepthwiseConv2D")


def _folded(layer: Any, keras: Any) -> bool:
    """Whether ``layer`` is a BatchNormalization that tfmot folds into the convolution before it.

    The 8-bit scheme's layout transforms (``Conv2DBatchNormFold`` and the depthwise variants)
    fold a BatchNormalization that directly follows a Conv2D / DepthwiseConv2D with a linear
    activation whose output goes nowhere else; the registry does not list BatchNormalization
    because it never sees one. A BN after ``Conv2D(activation="relu")`` is standalone.
    """
    if not isinstance(layer, keras.layers.BatchNormalization):
        return False
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1:
        return False
    inbound = nodes[0].inbound_layers
    inbound = inbound if isinstance(inbound, list) else [inbound]
    if len(inbound) != 1 or type(inbound[0]).__name__ not in _FOLDING:
        return False
    activation = getattr(getattr(inbound[0], "activation", None), "__name__", "linear")
    return activation == "linear" and len(getattr(inbound[0], "_outbound_nodes", [])) == 1


def float_layers(model: Any, names: list[str]) -> list[str]:
    """Which of the output-only layers ``names`` keep weights in float (the others have none)."""
    return [layer.name for layer in model.layers if layer.name in names and layer.weights]


def quantize(model: Any, preserve: Preserve) -> tuple[Any, list[str]]:
    """Annotate every layer and apply the scheme; weightless unsupported layers output-only.

    Args:
        model: A stripped tf_keras model.
        preserve: What the scheme keeps.

    Returns:
        The QAT model (fake-quant wrappers) and the layers quantized at their output only.

    Raises:
        ModelFormatError: tfmot cannot quantize the model (a layer with weights it does not
            support, a nested model...).
    """
    qk = compat.tfmot().quantization.keras
    configs = compat.require(
        "tensorflow_model_optimization.python.core.quantization.keras.default_8bit."
        "default_8bit_quantize_configs"
    )
    scheme = _scheme(preserve)
    special = output_only_layers(model)
    try:
        if not special:  # tfmot's own whole-model annotation
            return qk.quantize_apply(qk.quantize_annotate_model(model), scheme), []

        def annotate(layer: Any) -> Any:
            if layer.name in special:
                return qk.quantize_annotate_layer(layer, configs.Default8BitOutputQuantizeConfig())
            return qk.quantize_annotate_layer(layer)

        annotated = compat.keras().models.clone_model(model, clone_function=annotate)
        scope = {"Default8BitOutputQuantizeConfig": configs.Default8BitOutputQuantizeConfig}
        with qk.quantize_scope(scope):
            return qk.quantize_apply(annotated, scheme), special
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"qat-int8: tfmot cannot quantize this model: {exc}") from exc


def qat_model(model: Any, data: Path, cfg: Any, preserve: Preserve) -> Quantized:
    """Apply the QAT scheme for ``preserve`` and fine-tune.

    Args:
        model: A stripped tf_keras model.
        data: Split dataset directory (train split).
        cfg: Fine-tune parameters (epochs, learning_rate, batch_size, seed).
        preserve: ``none``, ``sparsity``, ``clusters`` or ``sparsity+clusters``.

    Returns:
        The trained QAT model (fake-quant wrappers) and stats (``output_only_layers``: layers
        such as ``Rescaling`` or a standalone ``BatchNormalization`` whose output alone is
        quantized; ``float_weight_layers``: those of them whose weights stay in float).
    """
    qat, special = quantize(model, preserve)
    stats = fine_tune(qat, data, cfg)
    stats["preserve"] = preserve
    if special:
        stats["output_only_layers"] = special
        kept = float_layers(model, special)
        if kept:
            stats["float_weight_layers"] = kept
    return Quantized(qat, stats)


class QatInt8(
    KerasTechnique,
    name="qat-int8",
    quant_mode="int8",
    family="quantize",
    group="QAT",
    purpose="quantization-aware training",
    rank=90,
):
    """Quantization-aware training (fake-quant fine-tune) exported as full-integer INT8 TFLite.

    Keeps sparsity / clusters of pruned or clustered inputs (PQAT / CQAT / PCQAT).
    """

    Config = Config

    def own_name(self, cfg: Config) -> str:
        """``qat-int8`` or ``qat-int8-uint8io`` for integer IO."""
        return self.name if cfg.io_dtype == "float32" else f"{self.name}-{cfg.io_dtype}io"

    def transform(self, src: Source, data: Path | None, cfg: Config, work: Path) -> dict[str, Any]:
        """Quantization-aware fine-tune, then INT8 export from the learned ranges."""
        model, bridged = load_tunable(src, data, self.purpose)
        preserve = resolve_preserve(cfg.preserve, src.parent_chain, model)
        res = qat_model(model, data, cfg, preserve)  # type: ignore[arg-type]
        return {
            **bridged,
            **res.stats,
            **export_tflite(res.model, work / self.model_file, "qat", io_dtype=cfg.io_dtype),
        }
