"""Shared pieces of the techniques: config base classes, input checks, fine-tuning, stats.

Nothing here imports a heavy framework at module level; TensorFlow, tfmot, LiteRT and ONNX
Runtime come through :mod:`kfedge.compat` inside the functions that need them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kfedge import compat
from kfedge.candidate import META_FILE, Candidate, keras_path, load_candidate, model_path
from kfedge.data import SPLITS, read_info, split_path
from kfedge.errors import ConfigError, ModelFormatError, NotFoundError
from kfedge.formats import KERAS_FORMATS, detect_format, model_size_bytes
from kfedge.keras3_config import check_fine_tunable, needs_bridge
from kfedge.models import epoch_progress, load_keras, save_keras

#: Layer classes whose kernels the techniques prune / cluster / report.
KERNEL_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense", "Conv1D", "SeparableConv2D")
#: Relative path of the stripped Keras model inside a candidate directory.
KERAS_FILE = "keras/model.keras"

IoDtype = Literal["float32", "int8", "uint8"]


# -- configs ---------------------------------------------------------------------------------
class TechniqueConfig(BaseModel):
    """Fields every technique accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$",
        description="Candidate name; default: the technique name plus its key parameters.",
    )


class FineTuneConfig(TechniqueConfig):
    """Fields of techniques that fine-tune on the train split."""

    epochs: int = Field(default=6, ge=1, le=200, description="Fine-tune epochs.")
    learning_rate: float = Field(default=3e-4, gt=0, le=0.1, description="Adam learning rate.")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Fine-tune batch size.")
    seed: int = Field(default=0, ge=0, description="Seed for shuffling and initialisation.")


# -- resolved inputs -------------------------------------------------------------------------
@dataclass
class Source:
    """The model a technique starts from.

    Attributes:
        path: The file the technique reads (stripped Keras model of a candidate, or the model).
        parent: The parent candidate, when ``model`` was a candidate directory.
    """

    path: Path
    parent: Candidate | None = None

    @property
    def parent_name(self) -> str:
        """Name of the parent candidate, or ``baseline``."""
        return self.parent.name if self.parent else "baseline"

    @property
    def parent_chain(self) -> str:
        """The technique chain of the parent ("" for a baseline)."""
        return self.parent.technique if self.parent else ""


def resolve_source(model: str | Path, prefer_keras: bool = True) -> Source:
    """Resolve ``model`` (candidate directory or model file) to the file to start from.

    Args:
        model: A candidate directory, a SavedModel directory or a model file.
        prefer_keras: Take the candidate's stripped Keras model when it has one.

    Returns:
        The source file and the parent candidate, if any.
    """
    p = Path(model)
    parent = load_candidate(p) if p.is_dir() and (p / META_FILE).is_file() else None
    if parent is not None and parent.technique == "baseline":
        parent = None  # provision's baseline: candidates derived from it are named plainly
    path = keras_path(p) if prefer_keras else model_path(p)
    detect_format(path)
    return Source(Path(path), parent)


def check_convertible(src: Source, purpose: str) -> str:
    """Refuse anything the TFLite converter / tf2onnx cannot start from (no framework import)."""
    fmt = detect_format(src.path)
    if fmt not in KERAS_FORMATS:
        raise ModelFormatError(
            f"{purpose} needs a Keras model (.keras/.h5) or a SavedModel, but {src.path} is a "
            f"{fmt} file; start from the baseline or a candidate that keeps its Keras model"
        )
    return fmt


def check_tf_keras(src: Source, purpose: str) -> None:
    """Refuse models tfmot cannot work on, even through the Keras 3 bridge; no framework import.

    A tf_keras model passes; so does a Keras 3 ``.keras`` / ``.h5`` file whose layers the bridge
    rebuilds (:func:`load_tunable` rebuilds it). Refused in one line: TFLite / ONNX, a SavedModel
    without Keras metadata (Keras 3 ``model.export()``), a Keras 3 model with layers the bridge
    cannot rebuild (named).
    """
    fmt = detect_format(src.path)
    if fmt not in KERAS_FORMATS:
        raise ModelFormatError(
            f"{purpose} needs a tf_keras model (.keras, .h5 or a Keras SavedModel), but "
            f"{src.path} is a {fmt} file; pass the baseline or a candidate that keeps its "
            "Keras model (keras/model.keras)"
        )
    check_fine_tunable(src.path, (purpose,))


def check_data(data: str | Path | None, splits: tuple[str, ...], purpose: str) -> Path:
    """Check that ``data`` is a split dataset holding ``splits``; return it as a Path."""
    if data is None or str(data) == "":
        raise ConfigError(
            f"{purpose} needs a split dataset (the {'/'.join(splits)} split of provision's "
            "Dataset output), but no data was given"
        )
    p = Path(data)
    if not p.exists():
        raise ConfigError(f"{purpose}: dataset {p} does not exist")
    if p.is_dir():
        read_info(p)
        for s in splits:
            if s not in SPLITS:  # pragma: no cover - programming error
                raise ValueError(s)
            split_path(p, s)
    return p


# -- candidate directory ---------------------------------------------------------------------
@contextmanager
def staging(out_dir: str | Path) -> Iterator[Path]:
    """A temp directory next to ``out_dir`` whose content replaces ``out_dir``'s on success.

    On failure nothing is left behind: ``out_dir`` keeps what it had (a KFP output directory
    stays empty).
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        yield tmp
        out.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            dest = out / item.name
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            os.replace(item, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def chain(src: Source, steps: str) -> str:
    """The technique chain of a new candidate: the parent's chain, then ``steps``."""
    return f"{src.parent_chain}>{steps}" if src.parent_chain else steps


def default_name(src: Source, own: str, config: TechniqueConfig) -> str:
    """The candidate name: ``config.name``, else ``own`` (prefixed by a parent candidate's)."""
    if config.name:
        return config.name
    return f"{src.parent.name}-{own}" if src.parent else own


def finish(
    work: Path,
    *,
    src: Source,
    own_name: str,
    steps: str,
    config: TechniqueConfig,
    model_file: str,
    stats: dict[str, Any],
    keras_file: str | None = None,
    started: float | None = None,
) -> Candidate:
    """Build the Candidate for a finished technique and write ``candidate.json`` into ``work``."""
    from kfedge.candidate import save_candidate

    fmt = detect_format(work / model_file)
    stats = dict(stats)
    stats["size_bytes"] = model_size_bytes(work / model_file)
    if started is not None:
        stats["seconds"] = round(time.perf_counter() - started, 2)
    cand = Candidate(
        name=default_name(src, own_name, config),
        technique=chain(src, steps),
        format=fmt,
        model_file=model_file,
        params=config.model_dump(mode="json", exclude={"name"}),
        parent=src.parent_name,
        keras_file=keras_file,
        stats=stats,
    )
    save_candidate(cand, work)
    return cand


# -- data ------------------------------------------------------------------------------------
def load_xy(data: Path, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a split dataset (or a plain .npz)."""
    from kfedge.data import load_split

    return load_split(data, split, limit)


def representative(data: Path, samples: int) -> tuple[Callable[[], Iterator[list]], int]:
    """A TFLite ``representative_dataset`` over the calibration split, and its sample count."""
    x, _ = load_xy(data, "calibration", samples)

    def gen() -> Iterator[list]:
        for i in range(len(x)):
            yield [x[i : i + 1]]

    return gen, int(len(x))


# -- Keras helpers ---------------------------------------------------------------------------
def kernel_attr(layer: Any) -> str | None:
    """Name of the kernel attribute of a conv / dense layer, else None."""
    for attr in ("depthwise_kernel", "kernel"):
        if getattr(layer, attr, None) is not None:
            return attr
    return None


def kernels(model: Any) -> dict[str, np.ndarray]:
    """Kernel weights of every conv / dense layer of a (stripped) Keras model, by layer name."""
    out: dict[str, np.ndarray] = {}
    for layer in model.layers:
        if type(layer).__name__ in KERNEL_LAYERS:
            attr = kernel_attr(layer)
            if attr:
                out[layer.name] = np.asarray(getattr(layer, attr).numpy())
    return out


def sparsity_stats(model: Any, layers: list[str] | None = None) -> dict[str, Any]:
    """Sparsity per kernel, over ``layers`` (the targeted ones) and over all kernels."""
    ks = kernels(model)
    per = {n: round(float(np.mean(k == 0)), 4) for n, k in ks.items()}
    chosen = [n for n in ks if layers is None or n in layers]
    zeros = sum(int(np.sum(ks[n] == 0)) for n in chosen)
    total = sum(int(ks[n].size) for n in chosen) or 1
    all_zeros = sum(int(np.sum(k == 0)) for k in ks.values())
    all_total = sum(int(k.size) for k in ks.values()) or 1
    return {
        "sparsity": round(zeros / total, 4),
        "kernel_sparsity": round(all_zeros / all_total, 4),
        "sparsity_per_layer": per,
    }


def measured_sparsity(model: Any) -> float:
    """Overall zero fraction of the model's kernels."""
    ks = kernels(model)
    total = sum(k.size for k in ks.values()) or 1
    return float(sum(np.sum(k == 0) for k in ks.values()) / total)


def unique_stats(model: Any, layers: list[str] | None = None) -> dict[str, Any]:
    """Number of unique values per kernel (all kernels), and the largest among ``layers``."""
    ks = kernels(model)
    per = {n: int(np.unique(k).size) for n, k in ks.items()}
    chosen = [per[n] for n in per if layers is None or n in layers]
    return {"unique_weights_per_layer": per, "max_unique_weights": max(chosen) if chosen else 0}


def outputs_softmax(model: Any) -> bool:
    """Whether the model's (first) output is a softmax (else logits are assumed)."""
    last = model.layers[-1]
    while hasattr(last, "layer"):  # tfmot wrappers (prune / cluster / quantize)
        last = last.layer
    act = getattr(last, "activation", None)
    while act is not None and not hasattr(act, "__name__") and hasattr(act, "activation"):
        act = act.activation  # QuantizeAwareActivation wraps the real activation
    if act is not None and getattr(act, "__name__", "") == "softmax":
        return True
    return type(last).__name__ == "Softmax"


def fine_tune(
    model: Any,
    data: Path,
    cfg: FineTuneConfig,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Compile ``model`` with Adam and fine-tune it on the train split.

    Args:
        model: A tf_keras model (possibly wrapped by tfmot).
        data: Split dataset directory.
        cfg: Epochs, learning rate, batch size, seed.
        callbacks: Extra Keras callbacks (e.g. ``UpdatePruningStep``).

    Returns:
        ``{"fine_tune_seconds", "fine_tune_steps", "train_accuracy"}``.
    """
    keras = compat.keras()
    x, y = load_xy(data, "train")
    keras.utils.set_random_seed(cfg.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_softmax(model)),
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    hist = model.fit(
        x,
        y,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        callbacks=[*(callbacks or []), epoch_progress(f"fine-tune {model.name}")],
        shuffle=True,
        verbose=0,
    )
    return {
        "fine_tune_seconds": round(time.perf_counter() - t0, 2),
        "fine_tune_steps": steps_per_epoch(len(x), cfg.batch_size) * cfg.epochs,
        "train_accuracy": round(float(hist.history["accuracy"][-1]), 4),
    }


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over ``n`` samples."""
    return max(1, -(-n // batch_size))


def train_count(data: Path) -> int:
    """Samples in the train split, read from the file header only."""
    from kfedge.data import npz_shapes

    return int(npz_shapes(split_path(data, "train"))["x"][0][0])


def max_output_diff(a: Any, b: Any, data: Path, n: int = 64) -> float:
    """Largest absolute difference between two Keras models' outputs on a calibration batch."""
    x, _ = load_xy(data, "calibration", n)
    ya = np.asarray(a(x, training=False))
    yb = np.asarray(b(x, training=False))
    return float(np.max(np.abs(ya - yb)))


def save_stripped(model: Any, work: Path) -> str:
    """Save the stripped Keras model into the candidate directory; return its relative path."""
    save_keras(model, work / KERAS_FILE)
    return KERAS_FILE


# -- TFLite ----------------------------------------------------------------------------------
def configure_int8(
    conv: Any,
    data: Path | None,
    io_dtype: str,
    allow_float_fallback: bool,
    samples: int,
) -> dict[str, Any]:
    """Set a TFLite converter up for INT8 (calibrated PTQ when ``data`` is given, else QAT)."""
    tf = compat.tf()
    stats: dict[str, Any] = {}
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if data is not None:
        gen, n = representative(data, samples)
        conv.representative_dataset = gen
        stats["calibration_samples"] = n
    if not allow_float_fallback:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_dtype != "float32":
        conv.inference_input_type = getattr(tf, io_dtype)
        conv.inference_output_type = getattr(tf, io_dtype)
    return stats


def export_tflite(
    model: Any,
    out: Path,
    quantize: Literal["none", "int8", "qat"],
    *,
    data: Path | None = None,
    io_dtype: str = "float32",
    calibration_samples: int = 256,
) -> dict[str, Any]:
    """Write the deployable TFLite of a live tf_keras model.

    Args:
        model: A stripped model (``none`` / ``int8``) or a trained QAT model (``qat``).
        out: Destination .tflite.
        quantize: ``none`` (FP32), ``int8`` (full integer, calibrated on ``data``) or ``qat``
            (full integer from the ranges QAT learned; float fallback allowed).
        data: Split dataset with a calibration split (``int8``).
        io_dtype: Model input/output type of an INT8 model.
        calibration_samples: Calibration samples (``int8``).

    Returns:
        Export stats (``calibration_samples`` for ``int8``).
    """
    from kfedge.convert import convert_keras_tflite

    stats: dict[str, Any] = {}

    def configure(conv: Any) -> None:
        if quantize == "int8":
            stats.update(configure_int8(conv, data, io_dtype, False, calibration_samples))
        elif quantize == "qat":
            stats.update(configure_int8(conv, None, io_dtype, True, 0))

    convert_keras_tflite(model, out, configure)
    return stats


def load_tf_keras(path: Path) -> Any:
    """Load a tf_keras model (``models.load_keras``)."""
    return load_keras(path)


def bridge_samples(data: Path | None, limit: int) -> np.ndarray | None:
    """Inputs to check a Keras 3 rebuild on: the calibration split, else the train split."""
    if data is None:
        return None
    for split in ("calibration", "train"):
        try:
            return load_xy(data, split, limit)[0]
        except NotFoundError:
            continue
    return None


def load_tunable(src: Source, data: Path | None, purpose: str) -> tuple[Any, dict[str, Any]]:
    """The tf_keras model a fine-tuning technique starts from, and what it took to get it.

    A tf_keras model is loaded as it is (no stats). A Keras 3 ``.keras`` / ``.h5`` file is
    rebuilt in tf_keras by :func:`kfedge.keras_bridge.to_tf_keras` in a scratch folder, checked
    to give the same outputs on up to 64 calibration samples, and loaded from there; the stats
    then hold ``keras_bridge``: the bridge's record (the scratch ``output`` left out).

    Args:
        src: The resolved source.
        data: The split dataset (samples for the output check), or None (seeded random inputs).
        purpose: What fine-tunes it, for the progress line.

    Returns:
        ``(model, stats)``.
    """
    if not needs_bridge(src.path):
        return load_keras(src.path), {}
    from kfedge import keras_bridge

    samples = bridge_samples(data, keras_bridge.MAX_SAMPLES)
    with tempfile.TemporaryDirectory(prefix="kfedge-bridge-") as tmp:
        res = keras_bridge.to_tf_keras(src.path, Path(tmp) / "bridged.keras", samples)
        model = load_keras(res.output)
    record = {k: v for k, v in res.to_dict().items() if k != "output"}
    print(
        f"[kfedge] {purpose}: Keras {res.source_keras_version} model rebuilt in tf_keras "
        f"{res.tf_keras_version} ({res.layers_mapped} layers, max |diff| {res.max_abs_diff:.2g} "
        f"on {res.samples} samples)",
        flush=True,
    )
    return model, {"keras_bridge": record}


# -- config validation -----------------------------------------------------------------------
def validate(cls: type[TechniqueConfig], params: Any, technique: str) -> Any:
    """Validate ``params`` against a config class; a bad value becomes a ConfigError.

    Args:
        cls: The technique's pydantic config class.
        params: A dict (or None, or an instance of ``cls``).
        technique: Technique name, for the message.

    Returns:
        The validated config.
    """
    from pydantic import ValidationError

    if isinstance(params, cls):
        return params
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"{technique}: parameters must be a mapping of name to value, got "
            f"{type(params).__name__}"
        )
    try:
        return cls.model_validate(params)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "parameters"
            got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
            problems.append(f"{loc}: {err['msg']}{got}")
        allowed = ", ".join(sorted(cls.model_fields))
        raise ConfigError(
            f"invalid parameters for technique '{technique}': {'; '.join(problems)}. "
            f"Accepted parameters: {allowed}"
        ) from None


def tflite_stats(path: str | Path) -> dict[str, Any]:
    """Kernel storage dtypes (by ``op#index``), IO dtypes and stored-kernel sparsity of a TFLite.

    Read with :func:`kfedge.weights.read_tflite`, the reader the evaluation uses, so the two
    count the same kernels; a float16 kernel (behind a DEQUANTIZE) reports its stored dtype.
    """
    from kfedge.weights import kernel_stats, read_tflite

    read = read_tflite(path)
    dtypes = {k.key: k.dtype for k in read.kernels}
    counts: dict[str, int] = {}
    for d in dtypes.values():
        counts[d] = counts.get(d, 0) + 1
    stats: dict[str, Any] = {
        "weight_dtypes": dtypes,
        "weight_dtype_counts": counts,
        "input_dtype": read.input_dtype,
        "output_dtype": read.output_dtype,
    }
    if read.kernels:
        stats["stored_weight_sparsity"] = round(kernel_stats(read.kernels)["sparsity"], 4)
    return stats
