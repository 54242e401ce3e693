"""Read a Keras 3 model file's config and say whether tf_keras can rebuild it; no TensorFlow.

The half of the Keras 3 -> tf_keras bridge (:mod:`kfedge.keras_bridge`) that runs before any
heavy work: :data:`LAYERS` is the table of Keras 3 layer classes the bridge rebuilds and how
their config keys map to tf_keras; :func:`check_convertible` refuses, in one line naming the
layers, a model it cannot rebuild. A ``.keras`` file is read as a zip (``config.json``,
``metadata.json``); a Keras 3 ``.h5`` file through h5py.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfedge import compat
from kfedge.errors import ModelFormatError
from kfedge.formats import detect_format

#: What to say about the techniques that take a Keras 3 model without the bridge.
NO_FINE_TUNE = "techniques that do not fine-tune (ptq-*, onnx-*, fp32-*) accept it as is"

#: Model classes that may appear as layers; the bridge inlines them.
NESTED_MODELS = ("Functional", "Sequential")
_COMMON = ("name", "trainable", "dtype")
_KNOWN_REGULARIZERS = {"L1", "L2", "L1L2", "OrthogonalRegularizer"}
_KNOWN_CONSTRAINTS = {"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "RadialConstraint"}
#: Keras 3 activation names whose tf_keras function computes the same thing.
_SAME = "linear relu sigmoid tanh softmax softplus softsign elu selu exponential gelu mish swish"
ACTIVATIONS = {**{a: a for a in _SAME.split()}, "silu": "swish"}
#: Activations an ``Activation`` layer may use that become an equivalent tf_keras layer.
ACTIVATION_LAYERS = {
    "relu6": ("ReLU", {"max_value": 6.0}),
    "leaky_relu": ("LeakyReLU", {"alpha": 0.2}),
}
#: Activations an ``Activation`` layer may use that become a few tf_keras layers
#: (Rescaling, ReLU and for the silu forms Multiply).
ACTIVATION_GRAPHS = ("hard_sigmoid", "hard_silu", "hard_swish")


@dataclass(frozen=True)
class LayerSpec:
    """How one Keras 3 layer class's config maps to the tf_keras class of the same name."""

    keys: tuple[str, ...] = ()  # passed through under the same name
    rename: Mapping[str, str] = field(default_factory=dict)  # Keras 3 key -> tf_keras key
    fixed: Mapping[str, Any] = field(default_factory=dict)  # must hold this value
    ignore: tuple[str, ...] = ()  # irrelevant to inference and to tf_keras


_S = LayerSpec


def _wb(k: str) -> tuple[str, ...]:
    return (
        f"{k}_initializer",
        "bias_initializer",
        f"{k}_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        f"{k}_constraint",
        "bias_constraint",
    )


_CONV = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate")
_DW = ("kernel_size", "strides", "padding", "depth_multiplier", "data_format", "dilation_rate")
_SEP = (*_CONV, "depth_multiplier", "activation", "use_bias", "depthwise_initializer")
_SEP += ("pointwise_initializer", "bias_initializer", "depthwise_regularizer")
_SEP += ("pointwise_regularizer", "bias_regularizer", "activity_regularizer")
_SEP += ("depthwise_constraint", "pointwise_constraint", "bias_constraint")
_NORM = ("center", "scale", "beta_initializer", "gamma_initializer", "beta_regularizer")
_NORM += ("gamma_regularizer", "beta_constraint", "gamma_constraint")
_POOL = _S(("pool_size", "strides", "padding", "data_format"))
_GLOBAL = _S(("data_format", "keepdims"))

#: Keras 3 operations recorded in a functional graph (``x + 3.0``, ``a * b``) that the bridge
#: rebuilds: with a scalar operand as ``Rescaling``, with two tensors as the merge layer.
OPS = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply", "TrueDivide": None}

#: Keras 3 layer class -> how its config maps to the tf_keras class of the same name.
LAYERS: dict[str, LayerSpec] = {
    "InputLayer": _S(),
    **{
        c: _S((*_CONV, "groups", "activation", "use_bias", *_wb("kernel")))
        for c in ("Conv1D", "Conv2D", "Conv3D")
    },
    **{
        c: _S((*_CONV, "output_padding", "activation", "use_bias", *_wb("kernel")))
        for c in ("Conv2DTranspose", "Conv3DTranspose")
    },
    **{
        c: _S((*_DW, "activation", "use_bias", *_wb("depthwise")))
        for c in ("DepthwiseConv1D", "DepthwiseConv2D")
    },
    "SeparableConv1D": _S(_SEP),
    "SeparableConv2D": _S(_SEP),
    "Dense": _S(("units", "activation", "use_bias", *_wb("kernel")), fixed={"lora_rank": None}),
    "Embedding": _S(
        ("input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer")
        + ("activity_regularizer", "embeddings_constraint", "mask_zero"),
        fixed={"lora_rank": None},
    ),
    "BatchNormalization": _S(
        ("axis", "momentum", "epsilon", *_NORM, "moving_mean_initializer")
        + ("moving_variance_initializer", "synchronized"),
        fixed={"renorm": False},
        ignore=("renorm_clipping", "renorm_momentum"),
    ),
    "LayerNormalization": _S(("axis", "epsilon", *_NORM), fixed={"rms_scaling": False}),
    "Activation": _S(("activation",)),
    "ReLU": _S(("max_value", "negative_slope", "threshold")),
    "LeakyReLU": _S(rename={"negative_slope": "alpha"}),
    "ELU": _S(("alpha",)),
    "PReLU": _S(("alpha_initializer", "alpha_regularizer", "alpha_constraint", "shared_axes")),
    "Softmax": _S(("axis",)),
    **{f"{k}Pooling{d}D": _POOL for k in ("Max", "Average") for d in (1, 2, 3)},
    **{f"Global{k}Pooling{d}D": _GLOBAL for k in ("Max", "Average") for d in (1, 2, 3)},
    **{c: _S() for c in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")},
    "Concatenate": _S(("axis",)),
    "Reshape": _S(("target_shape",)),
    "Flatten": _S(("data_format",)),
    "Permute": _S(("dims",)),
    "RepeatVector": _S(("n",)),
    "Identity": _S(),
    "Dropout": _S(("rate", "noise_shape", "seed")),
    "SpatialDropout2D": _S(("rate", "data_format"), ignore=("seed", "noise_shape")),
    "GaussianNoise": _S(("stddev", "seed")),
    "GaussianDropout": _S(("rate", "seed")),
    "ZeroPadding2D": _S(("padding", "data_format")),
    "Cropping2D": _S(("cropping", "data_format")),
    "UpSampling2D": _S(("size", "data_format", "interpolation")),
    "Rescaling": _S(("scale", "offset")),
    "Normalization": _S(("axis", "mean", "variance"), fixed={"invert": False}),
}


# -- reading a Keras 3 file without TensorFlow -----------------------------------------------
def _h5_attrs(path: Path) -> dict[str, Any]:
    h5py = compat.require("h5py")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in ("keras_version", "model_config") if k in f.attrs}
    except OSError as exc:
        raise ModelFormatError(f"{path} is not a readable HDF5 Keras file: {exc}") from exc
    return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in attrs.items()}


def source_keras_version(path: str | Path) -> str:
    """Keras version recorded in a ``.keras`` or ``.h5`` model ("" for other formats / none)."""
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "keras":
        with zipfile.ZipFile(p) as zf:
            if "metadata.json" not in zf.namelist():
                return ""
            try:
                return str(json.loads(zf.read("metadata.json")).get("keras_version", ""))
            except json.JSONDecodeError:
                return ""
    if fmt == "h5":
        return _h5_attrs(p).get("keras_version", "")
    return ""


def needs_bridge(path: str | Path) -> bool:
    """Whether ``path`` is a Keras 3 ``.keras`` / ``.h5`` model that tfmot cannot use as is."""
    return source_keras_version(path).startswith("3")


def read_config(path: str | Path) -> dict[str, Any]:
    """The model config (``class_name`` + ``config``) of a Keras 3 ``.keras`` or ``.h5`` file.

    Raises:
        ModelFormatError: Not a Keras 3 file, or its config is missing or unreadable.
    """
    p = Path(path)
    _require_keras3(p)
    try:
        if detect_format(p) == "keras":
            with zipfile.ZipFile(p) as zf:
                return json.loads(zf.read("config.json"))
        return json.loads(_h5_attrs(p)["model_config"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{p} has no readable model config: {exc}") from exc


def _require_keras3(p: Path, techniques: Sequence[str] = ()) -> str:
    fmt = detect_format(p)
    if fmt == "savedmodel":
        what = ", ".join(techniques) or "pruning, clustering or QAT"
        raise ModelFormatError(
            f"{p}: a SavedModel (such as Keras 3 model.export() writes) holds traced functions, "
            f"not layers, so it cannot be rebuilt as a tf_keras model for {what}; pass the "
            f".keras file instead; {NO_FINE_TUNE}"
        )
    if fmt not in ("keras", "h5"):
        raise ModelFormatError(f"{p} is a {fmt} model; the Keras 3 bridge reads .keras / .h5")
    version = source_keras_version(p)
    if not version.startswith("3"):
        raise ModelFormatError(
            f"{p} was written by Keras {version or '(unknown version)'}, not Keras 3; "
            "a tf_keras model needs no conversion"
        )
    return version


# -- what can be rebuilt -----------------------------------------------------------------------
def _policy(value: Any) -> str:
    if value is None:
        return "float32"
    if isinstance(value, Mapping):
        return str((value.get("config") or {}).get("name", value.get("class_name", "?")))
    return str(value)


def activation_name(value: Any) -> str | None:
    """The name of a serialised built-in activation (None for a custom one)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("config"), str):
        if str(value.get("module", "")).startswith("keras"):
            return value["config"]  # a built-in function serialised as an object
    return None


def _option_problems(cls: str, cfg: Mapping[str, Any], spec: LayerSpec) -> list[str]:
    out = []
    if _policy(cfg.get("dtype")) != "float32" and cls != "InputLayer":
        out.append(f"dtype policy {_policy(cfg.get('dtype'))}")
    for key, want in spec.fixed.items():
        if key in cfg and cfg[key] != want:
            out.append(f"{cls} with {key}={cfg[key]!r}")
    known = {*_COMMON, *spec.keys, *spec.rename, *spec.fixed, *spec.ignore}
    for key, value in cfg.items():
        if key not in known and cls != "InputLayer" and value not in (None, False, [], {}):
            out.append(f"{cls} option {key}={value!r}")
        if key == "activation" and key in spec.keys:
            name = activation_name(value)
            rewritten = (*ACTIVATION_LAYERS, *ACTIVATION_GRAPHS)
            if name not in ACTIVATIONS and not (cls == "Activation" and name in rewritten):
                out.append(f"activation {name or value!r}")
        if isinstance(value, Mapping) and key.endswith(("_regularizer", "_constraint")):
            known_set = _KNOWN_REGULARIZERS if key.endswith("_regularizer") else _KNOWN_CONSTRAINTS
            if value.get("class_name") not in known_set:
                out.append(f"{key.rsplit('_', 1)[1]} {value.get('class_name')}")
    if cls == "InputLayer" and (cfg.get("sparse") or cfg.get("ragged")):
        out.append("sparse or ragged input")
    return out


def is_op(entry: Mapping[str, Any]) -> bool:
    """Whether a functional-graph entry is a Keras 3 operation (``keras.ops``), not a layer."""
    return str(entry.get("module") or "").startswith(("keras.src.ops", "keras.ops"))


def _op_problems(entry: Mapping[str, Any]) -> list[str]:
    cls = str(entry.get("class_name"))
    if cls not in OPS:
        return [f"operation {cls}"]
    out = []
    for node in entry.get("inbound_nodes", []):
        args = node.get("args", [])
        scalars = [a for a in args if isinstance(a, (int, float))]
        tensors = [a for a in args if isinstance(a, Mapping)]
        if len(args) != 2 or not tensors or len(scalars) + len(tensors) != 2 or node.get("kwargs"):
            out.append(f"operation {cls} with these arguments")
        elif not scalars and OPS[cls] is None:
            out.append(f"operation {cls} of two tensors")
        elif cls == "TrueDivide" and isinstance(args[0], (int, float)):
            out.append("operation TrueDivide of a scalar by a tensor")
    return out


def _problems(model_cfg: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(what, layer path) for everything in the config the bridge cannot rebuild."""
    out: list[tuple[str, str]] = []
    cfg = model_cfg.get("config") or {}
    for entry in cfg.get("layers", []):
        cls = str(entry.get("class_name", "?"))
        lcfg = entry.get("config") or {}
        name = prefix + str(entry.get("name") or lcfg.get("name") or "?")
        module = str(entry.get("module") or "keras")
        if is_op(entry):
            out.extend((what, name) for what in _op_problems(entry))
        elif not module.startswith("keras") or entry.get("registered_name") not in (None, cls):
            out.append((str(entry.get("registered_name") or cls), name))
        elif cls in NESTED_MODELS:
            out.extend(_problems(entry, name + "/"))
        elif cls not in LAYERS:
            out.append((cls, name))
        else:
            out.extend((what, name) for what in _option_problems(cls, lcfg, LAYERS[cls]))
    return out


def _describe(problems: list[tuple[str, str]], limit: int = 8) -> list[str]:
    by_what: dict[str, list[str]] = {}
    for what, name in problems:
        by_what.setdefault(what, []).append(name)
    items = []
    for what, names in by_what.items():
        quoted = ", ".join(f"'{n}'" for n in names[:3]) + (", ..." if len(names) > 3 else "")
        items.append(f"{what} (layer{'s' if len(names) > 1 else ''} {quoted})")
    return items[:limit] + ([f"{len(items) - limit} more"] if len(items) > limit else [])


def unsupported_layers(path: str | Path) -> list[str]:
    """What in a Keras 3 model the bridge cannot rebuild, e.g. ``"Lambda (layer 'lam')"``.

    Reads only the file's config (no TensorFlow for ``.keras``; h5py for ``.h5``).

    Args:
        path: A Keras 3 ``.keras`` or ``.h5`` file.

    Returns:
        One entry per unsupported layer class, activation or option; empty when convertible.
    """
    cfg = read_config(path)
    if cfg.get("class_name") not in NESTED_MODELS:
        return [f"model class {cfg.get('class_name')} (a subclassed model has no layer graph)"]
    if cfg.get("class_name") == "Sequential":
        layers = cfg.get("config", {}).get("layers", [])
        has_input = layers and layers[0].get("class_name") == "InputLayer"
        if not has_input and not cfg.get("config", {}).get("build_input_shape"):
            return ["an unbuilt Sequential model (no input shape)"]
    return _describe(_problems(cfg))


def check_convertible(path: str | Path, techniques: Sequence[str] = ()) -> str:
    """Refuse, in one line, a model the bridge cannot rebuild as tf_keras; cheap, no TF for .keras.

    Args:
        path: The model file.
        techniques: The fine-tuning techniques that need the rebuild, named in the refusal.

    Returns:
        The Keras version that wrote the file (``3.x``).

    Raises:
        ModelFormatError: A SavedModel, a non-Keras-3 file, or unsupported layers (named).
    """
    p = Path(path)
    version = _require_keras3(p, techniques)
    bad = unsupported_layers(p)
    if bad:
        need = f", so {', '.join(techniques)} cannot fine-tune it" if techniques else ""
        raise ModelFormatError(
            f"{p.name}: layers Keras 3 -> tf_keras cannot rebuild: {', '.join(bad)}{need}; "
            f"{NO_FINE_TUNE}"
        )
    return version


def check_fine_tunable(path: str | Path, techniques: Sequence[str] = ()) -> str:
    """Whether the tfmot techniques can start from a Keras model; cheap, no TF for ``.keras``.

    Args:
        path: The model (``.keras``, ``.h5``, SavedModel; other formats are left to the
            techniques' own checks).
        techniques: The fine-tuning techniques planned, named in a refusal.

    Returns:
        ``""`` when the model needs no rebuild (tf_keras, or not a Keras model), else the Keras
        version of a Keras 3 file the bridge will rebuild.

    Raises:
        ModelFormatError: In one line: a SavedModel without Keras metadata (Keras 3
            ``model.export()``), or a Keras 3 model with layers the bridge cannot rebuild.
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "savedmodel" and not (p / "keras_metadata.pb").is_file():
        _require_keras3(p, techniques)  # raises: traced functions, no layers
    if fmt in ("keras", "h5") and needs_bridge(p):
        return check_convertible(p, techniques)
    return ""
