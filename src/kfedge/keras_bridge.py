"""Rebuild a Keras 3 model as a tf_keras (Keras 2) model, so TFMOT can prune, cluster or QAT it.

Keras 3 is the default ``keras`` since TensorFlow 2.16, but TensorFlow Model Optimization works
only on tf_keras models. :func:`to_tf_keras` reads a Keras 3 ``.keras`` (or Keras 3 ``.h5``)
file, rebuilds the same graph in tf_keras layer by layer from the keys both Keras versions share,
copies the weights, checks that the rebuilt model (as saved and loaded back) gives the same
outputs on the samples, and only then writes it.

:func:`check_convertible` (from :mod:`kfedge.keras3_config`, re-exported here) answers before any
heavy work, without TensorFlow for a ``.keras`` file, whether a model can be rebuilt, with one
line naming what cannot. A SavedModel (e.g. from Keras 3 ``model.export()``) holds traced
functions, not layers, so it can never be rebuilt.

Keras 3 operations recorded in a functional graph (``x + 3.0``, ``x * y``) and the
``hard_sigmoid`` / ``hard_silu`` activations (MobileNetV3) become equivalent tf_keras layers
(``Rescaling``, merge layers, ``ReLU``).

Nested Sequential / Functional models (e.g. a backbone called inside a model) are inlined, so
the result is one flat graph, which is what TFMOT wraps layer by layer.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.errors import DataError, DependencyError, KfedgeError, ModelFormatError
from kfedge.fsutil import write_with
from kfedge.keras3_config import (
    ACTIVATION_GRAPHS,
    ACTIVATION_LAYERS,
    ACTIVATIONS,
    LAYERS,
    NESTED_MODELS,
    OPS,
    activation_name,
    check_convertible,
    check_fine_tunable,
    is_op,
    needs_bridge,
    read_config,
    source_keras_version,
    unsupported_layers,
)

__all__ = [
    "BridgeResult",
    "check_convertible",
    "check_fine_tunable",
    "needs_bridge",
    "read_config",
    "rebuild",
    "source_keras_version",
    "to_tf_keras",
    "unsupported_layers",
]

#: Relative tolerance of the output check: ``max |diff| <= TOLERANCE * max(1, max |output|)``.
TOLERANCE = 1e-5
#: At most this many samples are compared.
MAX_SAMPLES = 64


@dataclass(frozen=True)
class BridgeResult:
    """What :func:`to_tf_keras` did, for the candidate's record.

    Attributes:
        source: The Keras 3 model file.
        output: The tf_keras model written.
        source_keras_version: Keras version that wrote ``source`` (e.g. ``3.15.1``).
        tf_keras_version: tf_keras version that wrote ``output``.
        layers_mapped: Layers rebuilt (input layers and inlined nested models not counted).
        layer_classes: How many layers of each Keras 3 class were rebuilt.
        nested_models_inlined: Nested Sequential / Functional models flattened into the graph.
        samples: Samples the outputs were compared on.
        max_abs_diff: Largest absolute output difference over those samples.
        tolerance: The absolute difference allowed (``TOLERANCE`` x output scale).
    """

    source: str
    output: str
    source_keras_version: str
    tf_keras_version: str
    layers_mapped: int
    layer_classes: dict[str, int]
    nested_models_inlined: int
    samples: int
    max_abs_diff: float
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return asdict(self)


# -- rebuilding --------------------------------------------------------------------------------
def _object(module: Any, value: Any) -> Any:
    """A tf_keras initializer / regularizer / constraint from its Keras 3 serialisation."""
    if value is None or isinstance(value, str):
        return value
    cls = getattr(module, str(value.get("class_name")), None)
    if cls is None:
        return None
    params = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in (value.get("config") or {}).items() if k in params})


def _kwargs(k2: Any, cfg: Mapping[str, Any], spec: Any) -> dict[str, Any]:
    """tf_keras constructor arguments from a Keras 3 layer config (the keys both share)."""
    kw: dict[str, Any] = {k: cfg[k] for k in spec.keys if k in cfg}
    kw.update({new: cfg[old] for old, new in spec.rename.items() if old in cfg})
    for key in list(kw):
        if key.endswith("_initializer"):
            kw[key] = _object(k2.initializers, kw[key])
            if kw[key] is None:
                del kw[key]  # tf_keras default; the weights are copied anyway
        elif key.endswith("_regularizer"):
            kw[key] = _object(k2.regularizers, kw[key])
        elif key.endswith("_constraint"):
            kw[key] = _object(k2.constraints, kw[key])
        elif key == "activation":
            kw[key] = activation_name(kw[key])
        elif key in ("axis", "dims", "target_shape") and isinstance(kw[key], list):
            kw[key] = tuple(kw[key])
    return kw


class _Builder:
    """Builds the tf_keras graph; remembers (Keras 3 layer, tf_keras layer) pairs for weights."""

    def __init__(self, k2: Any) -> None:
        self.k2 = k2
        self.pairs: list[tuple[Any, Any]] = []  # layers with weights to copy
        self.built: list[str] = []  # Keras 3 class of every layer rebuilt
        self.made: dict[int, Any] = {}  # id(Keras 3 layer) -> tf_keras layer (shared calls)
        self.names: set[str] = set()
        self.nested: set[int] = set()  # id() of the nested Keras 3 models inlined
        self.inputs: list = []
        self.reserved: set[str] = set()  # top-level names; inlined layers make way for them

    def _name(self, name: str, prefix: str) -> str:
        taken = self.names | (self.reserved if prefix else set())
        out = name if name not in taken else f"{prefix}{name}"
        i = 1
        while out in taken:
            out, i = f"{prefix}{name}_{i}", i + 1
        self.names.add(out)
        return out

    def layer(self, entry: Mapping[str, Any], k3_layer: Any, prefix: str) -> Any:
        """The tf_keras layer (or small layer graph, as a callable) for one Keras 3 layer."""
        if id(k3_layer) in self.made:
            return self.made[id(k3_layer)]
        cls, cfg = entry["class_name"], dict(entry.get("config") or {})
        kw = _kwargs(self.k2, cfg, LAYERS[cls])
        name = self._name(str(cfg.get("name") or entry.get("name")), prefix)
        common = {"name": name, "trainable": bool(cfg.get("trainable", True))}
        self.built.append(cls)
        act = kw.get("activation")
        if cls == "Activation" and act in ACTIVATION_GRAPHS:
            made = self._hard_sigmoid(name, silu=act != "hard_sigmoid")
        else:
            if cls == "Activation" and act in ACTIVATION_LAYERS:
                cls, kw = ACTIVATION_LAYERS[act]
            elif "activation" in kw:
                kw["activation"] = ACTIVATIONS[act]
            made = getattr(self.k2.layers, cls)(**kw, **common)
            self.pairs.append((k3_layer, made))
        self.made[id(k3_layer)] = made
        return made

    def _hard_sigmoid(self, name: str, silu: bool) -> Any:
        """Keras 3 ``hard_sigmoid(x) = relu6(x + 3) / 6 = ReLU(1)(x / 6 + 0.5)``; silu: x * that."""
        L = self.k2.layers
        affine = L.Rescaling(1.0 / 6.0, offset=0.5, name=self._name(f"{name}_affine", f"{name}_"))
        clip = L.ReLU(max_value=1.0, name=self._name(f"{name}_gate", f"{name}_") if silu else name)
        mul = L.Multiply(name=name) if silu else None

        def apply(x: Any, **kw: Any) -> Any:
            gate = clip(affine(x))
            return mul([x, gate]) if mul is not None else gate

        return apply

    def input(self, entry: Mapping[str, Any]) -> Any:
        cfg = entry.get("config") or {}
        shape = cfg.get("batch_shape") or [None, *(cfg.get("shape") or [])]
        name = self._name(str(cfg.get("name") or entry.get("name")), "")
        dtype = cfg.get("dtype")
        if isinstance(dtype, Mapping):  # a dtype policy
            dtype = (dtype.get("config") or {}).get("name")
        return self.k2.Input(batch_shape=tuple(shape), dtype=dtype, name=name)

    def op(self, entry: Mapping[str, Any], prefix: str, args: list) -> Any:
        """A Keras 3 operation: scalar ones become Rescaling, two-tensor ones a merge layer."""
        cls, L = entry["class_name"], self.k2.layers
        name = self._name(str(entry["name"]), prefix)
        self.built.append(f"ops.{cls}")
        tensors = [a for a in args if not isinstance(a, (int, float))]
        if len(tensors) == 2:
            return getattr(L, OPS[cls])(name=name)(tensors)
        c = float(next(a for a in args if isinstance(a, (int, float))))
        first = not isinstance(args[0], (int, float))
        scale, offset = {
            "Add": (1.0, c),
            "Multiply": (c, 0.0),
            "Subtract": (1.0, -c) if first else (-1.0, c),
            "TrueDivide": (1.0 / c, 0.0),
        }[cls]
        return L.Rescaling(scale, offset=offset, name=name)(tensors[0])

    def call(self, entry: Mapping[str, Any], k3_layer: Any, prefix: str, x: Any, **kw: Any) -> Any:
        """Apply one layer (or inline one nested model, or rebuild one operation) to ``x``."""
        if is_op(entry):
            return self.op(entry, prefix, x)
        if entry["class_name"] in NESTED_MODELS:
            self.nested.add(id(k3_layer))
            ins = list(x) if isinstance(x, (list, tuple)) else [x]
            sub = entry.get("name") or entry["config"]["name"]
            outs = self.model(entry, k3_layer, f"{prefix}{sub}_", ins)
            return outs[0] if len(outs) == 1 else outs
        return self.layer(entry, k3_layer, prefix)(x, **kw)

    def model(self, cfg: Mapping[str, Any], k3: Any, prefix: str, ins: list | None) -> list:
        """Build a Functional / Sequential config on ``ins`` (new Inputs when None)."""
        c = cfg["config"]
        entries = c.get("layers", [])
        if cfg["class_name"] == "Sequential":
            if entries and entries[0]["class_name"] == "InputLayer":
                first, entries = entries[0], entries[1:]
            else:
                first = {"config": {"batch_shape": c["build_input_shape"], "name": "input"}}
            x = ins[0] if ins else self.input(first)
            self.inputs = self.inputs if ins else [x]
            for e in entries:
                x = self.call(e, k3.get_layer(e["config"]["name"]), prefix, x)
            return [x]
        done: dict[tuple[str, int], list] = {}
        input_refs = _refs(c["input_layers"])
        for i, ref in enumerate(input_refs):
            entry = next(e for e in entries if e["name"] == ref[0])
            done[(ref[0], 0)] = [ins[i] if ins else self.input(entry)]
        if not ins:
            self.inputs = [done[(r[0], 0)][0] for r in input_refs]
        todo = [
            (e, i)
            for e in entries
            if e["class_name"] != "InputLayer"
            for i in range(len(e["inbound_nodes"]))
        ]
        while todo:
            left = []
            for e, i in todo:
                node = e["inbound_nodes"][i]
                if not all((r[0], r[1]) in done for r in _refs(node, node=True)):
                    left.append((e, i))
                    continue
                args = _resolve(node.get("args", []), done)
                kwargs = {
                    k: v for k, v in _resolve(node.get("kwargs", {}), done).items() if v is not None
                }
                x = args[0] if len(args) == 1 else args
                k3_layer = None if is_op(e) else k3.get_layer(e["name"])
                y = self.call(e, k3_layer, prefix, args if is_op(e) else x, **kwargs)
                done[(e["name"], i)] = list(y) if isinstance(y, (list, tuple)) else [y]
            if len(left) == len(todo):
                raise ModelFormatError(
                    f"the layer graph cannot be ordered: {', '.join(e['name'] for e, _ in left)} "
                    "wait on inputs that are never computed"
                )
            todo = left
        return [done[(r[0], r[1])][r[2]] for r in _refs(c["output_layers"])]


def _refs(obj: Any, node: bool = False) -> list[list]:
    """Every ``[layer, node, tensor]`` reference in an input / output spec, in order.

    In a call ``node`` only serialised Keras tensors count (a literal list is an argument).
    """
    if isinstance(obj, Mapping):
        if obj.get("class_name") == "__keras_tensor__":
            return [list(obj["config"]["keras_history"])]
        return [r for v in obj.values() for r in _refs(v, node)]
    if isinstance(obj, list):
        if not node and len(obj) == 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
            return [obj]
        return [r for v in obj for r in _refs(v, node)]
    return []


def _resolve(obj: Any, done: Mapping[tuple[str, int], list]) -> Any:
    if isinstance(obj, Mapping):
        if obj.get("class_name") == "__keras_tensor__":
            layer, node, index = obj["config"]["keras_history"]
            return done[(layer, node)][index]
        return {k: _resolve(v, done) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, done) for v in obj]
    return obj


def _short(weight_name: str) -> str:
    return weight_name.split("/")[-1].split(":")[0]


def _copy_weights(pairs: list[tuple[Any, Any]]) -> None:
    """Copy each Keras 3 layer's weights into its tf_keras twin (by name, else by order)."""
    for k3_layer, k2_layer in pairs:
        src = list(k3_layer.weights)
        dst = list(k2_layer.weights)
        if len(src) != len(dst):
            raise ModelFormatError(
                f"layer '{k2_layer.name}': Keras 3 has {len(src)} weights "
                f"({', '.join(_short(w.name) for w in src)}) but tf_keras has {len(dst)} "
                f"({', '.join(_short(w.name) for w in dst)})"
            )
        by_name = {_short(w.name): w for w in src}
        if sorted(by_name) == sorted(_short(w.name) for w in dst):
            src = [by_name[_short(w.name)] for w in dst]
        values = [np.asarray(w.numpy() if hasattr(w, "numpy") else w) for w in src]
        for w, v in zip(dst, values):
            if tuple(w.shape) != v.shape:
                raise ModelFormatError(
                    f"layer '{k2_layer.name}': weight {_short(w.name)} has shape "
                    f"{tuple(w.shape)} in tf_keras but {v.shape} in the Keras 3 model"
                )
        k2_layer.set_weights(values)


def rebuild(k3_model: Any, cfg: Mapping[str, Any]) -> tuple[Any, _Builder]:
    """Rebuild a loaded Keras 3 model as tf_keras from its config ``cfg``, weights included.

    Args:
        k3_model: The Keras 3 model (loaded from the file ``cfg`` came from).
        cfg: Its config (:func:`read_config`).

    Returns:
        The tf_keras model and the builder (``pairs``: Keras 3 / tf_keras layer pairs;
        ``nested``: the nested models inlined).
    """
    k2 = compat.keras()
    b = _Builder(k2)
    c = cfg["config"]
    b.reserved = {str(e.get("name") or e["config"].get("name")) for e in c.get("layers", [])}
    name = c.get("name")
    entries = c.get("layers", [])
    flat = not any(
        e["class_name"] in NESTED_MODELS
        or activation_name((e.get("config") or {}).get("activation")) in ACTIVATION_GRAPHS
        for e in entries
    )
    if cfg["class_name"] == "Sequential" and flat:
        model = k2.Sequential(name=name)
        if entries and entries[0]["class_name"] == "InputLayer":
            first, entries = entries[0], entries[1:]
        else:
            first = {"config": {"batch_shape": c["build_input_shape"], "name": "input"}}
        model.add(b.input(first))
        for e in entries:
            model.add(b.layer(e, k3_model.get_layer(e["config"]["name"]), ""))
    else:
        outs = b.model(cfg, k3_model, "", None)
        out_cfg = c.get("output_layers")
        if isinstance(out_cfg, Mapping):
            outs = dict(zip(out_cfg, outs))
        elif len(outs) == 1 and _refs(out_cfg) == [out_cfg]:
            outs = outs[0]
        ins = b.inputs[0] if len(b.inputs) == 1 else b.inputs
        model = k2.Model(ins, outs, name=name)
    _copy_weights(b.pairs)
    return model, b


def _flat(y: Any) -> list[np.ndarray]:
    if isinstance(y, Mapping):
        return [a for k in sorted(y) for a in _flat(y[k])]
    if isinstance(y, (list, tuple)):
        return [a for v in y for a in _flat(v)]
    return [np.asarray(y)]


def _samples(k3_model: Any, samples: Any, n: int) -> Any:
    """The first ``n`` samples, cast to the input dtypes.

    With ``samples`` None: 8 seeded random samples (standard normal; 0 / 1 for integer inputs).
    """
    inputs = list(k3_model.inputs)
    if samples is None:
        rng = np.random.default_rng(0)
        arrays = []
        for t in inputs:
            shape = tuple(t.shape[1:])
            if any(d is None for d in shape):
                raise DataError(
                    f"the model input {t.name} has the unknown shape {shape}; give samples"
                )
            size = (min(n, 8), *shape)
            integer = np.issubdtype(np.dtype(str(t.dtype)), np.integer)
            arrays.append(rng.integers(0, 2, size) if integer else rng.standard_normal(size))
            arrays[-1] = arrays[-1].astype(str(t.dtype))
        return arrays[0] if len(arrays) == 1 else arrays
    if isinstance(samples, Mapping):
        return {k: np.asarray(v)[:n] for k, v in samples.items()}
    arrays = [samples] if isinstance(samples, np.ndarray) else list(samples)
    if len(arrays) != len(inputs):
        raise DataError(f"the model has {len(inputs)} inputs but {len(arrays)} sample arrays came")
    out = [np.asarray(a)[:n].astype(str(t.dtype)) for a, t in zip(arrays, inputs)]
    if any(len(a) == 0 for a in out):
        raise DataError("no samples to compare the rebuilt model on (an empty array came)")
    return out[0] if len(out) == 1 else out


def compare(reference: list[np.ndarray], got: list[np.ndarray]) -> float:
    """Largest absolute difference between two output lists (inf when the shapes differ)."""
    if len(reference) != len(got) or any(a.shape != b.shape for a, b in zip(reference, got)):
        return float("inf")
    diffs = [float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(reference, got)]
    return max(diffs) if diffs else 0.0


def to_tf_keras(
    model_path: str | Path,
    out_path: str | Path,
    samples: np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray] | None,
    tolerance: float = TOLERANCE,
    max_samples: int = MAX_SAMPLES,
) -> BridgeResult:
    """Rebuild a Keras 3 model in tf_keras, check it reproduces the outputs, then save it.

    The check runs the model as written to disk and loaded back with tf_keras, so what is saved
    is what was verified. Nothing is written when any step fails.

    Args:
        model_path: Keras 3 ``.keras`` or ``.h5`` file.
        out_path: Where to write the tf_keras model (``.keras`` or ``.h5``).
        samples: Input samples (e.g. the calibration split; one array per model input, or a
            dict by input name); at most ``max_samples`` are used. None: seeded random inputs.
        tolerance: Allowed ``max |diff|`` relative to the output scale ``max(1, max |output|)``.
        max_samples: How many samples to compare at most.

    Returns:
        What was converted and how closely it matches.

    Raises:
        ModelFormatError: Not convertible (one line naming why), or the outputs differ.
        DataError: The samples do not fit the model's inputs.
    """
    src, out = Path(model_path), Path(out_path)
    if out.suffix not in (".keras", ".h5"):
        raise ModelFormatError(f"the tf_keras model is written as .keras or .h5, not {out.name}")
    version = check_convertible(src)
    cfg = read_config(src)
    compat.tf()
    keras3 = compat.require("keras")
    if not str(keras3.__version__).startswith("3"):
        raise DependencyError(
            f"{src} needs Keras 3 to read it, but keras {keras3.__version__} is installed"
        )
    try:
        k3_model = keras3.saving.load_model(str(src), compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure of Keras 3 is a bad model file
        raise ModelFormatError(f"{src} could not be loaded with Keras 3: {exc}") from exc
    x = _samples(k3_model, samples, max_samples)
    try:
        reference = _flat(k3_model(x, training=False))
    except Exception as exc:  # noqa: BLE001 - whatever Keras 3 raises on inputs that do not fit
        raise DataError(f"the samples do not fit the inputs of {src}: {exc}") from exc
    if not all(np.isfinite(r).all() for r in reference):
        raise DataError(f"{src} gives non-finite outputs on the samples; cannot compare")
    k2 = compat.keras()
    scale = max(1.0, max(float(np.max(np.abs(r))) if r.size else 0.0 for r in reference))
    allowed = tolerance * scale
    n = len(reference[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-bridge-", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        try:
            model, b = rebuild(k3_model, cfg)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".*HDF5 file.*legacy", UserWarning)
                model.save(staged, **({"include_optimizer": False} if out.suffix == ".h5" else {}))
            loaded = k2.models.load_model(staged, compile=False)
            diff = compare(reference, _flat(loaded(x, training=False)))
        except KfedgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any tf_keras failure means: cannot bridge
            raise ModelFormatError(f"{src}: rebuilding it in tf_keras failed: {exc}") from exc
        if not diff <= allowed:
            raise ModelFormatError(
                f"{src}: the tf_keras rebuild does not reproduce the Keras 3 model: max |diff| "
                f"{diff:.3g} over {n} samples exceeds {allowed:.3g} ({tolerance:g} x output "
                f"scale {scale:.3g}); nothing was written"
            )
        with staged.open("rb") as fh:
            write_with(out, lambda dst: shutil.copyfileobj(fh, dst))
    classes = Counter(b.built)
    return BridgeResult(
        source=str(src),
        output=str(out),
        source_keras_version=version,
        tf_keras_version=str(k2.__version__),
        layers_mapped=len(b.built),
        layer_classes=dict(sorted(classes.items())),
        nested_models_inlined=len(b.nested),
        samples=n,
        max_abs_diff=diff,
        tolerance=allowed,
    )
