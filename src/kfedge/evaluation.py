"""The evaluation result: a typed model, its JSON file, and its KFP metrics.

:func:`kfedge.evaluate.evaluate` returns an :class:`Evaluation`; the selection, the report, the
deploy step's smoke test and the CLI read its fields. The JSON field names are the keys of the
dict kfedge 0.1.0 wrote, so evaluation files written by 0.1.0 still load. Only the fields the
selection and the report cannot do without are required (``name``, ``technique``, ``format``,
``accuracy``, ``latency_ms.p50``, ``size_bytes``); every other measurement may be absent (None)
in a hand-written or older file. Unknown keys are kept, and written back.

Units: latencies in milliseconds, sizes in bytes, memory in MiB, accuracy and sparsity as
fractions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kfedge.errors import InvalidInputError

#: Keys every evaluation has (checked by :func:`load_evaluation` and the selection).
REQUIRED_KEYS = ("name", "technique", "format", "accuracy", "latency_ms", "size_bytes")
#: MB as the metrics and the report count it.
MB = 1_000_000


class _Part(BaseModel):
    """A nested part of an evaluation: unknown keys are kept (newer or hand-added fields)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (its JSON keys; fields never set are left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


class LatencyStats(_Part):
    """Batch-1 latency distribution in milliseconds (warm-up excluded).

    Attributes:
        p50: Median.
        p90: 90th percentile.
        p99: 99th percentile.
        mean: Mean.
        std: Sample standard deviation (0 for a single run).
        min: Fastest run.
        max: Slowest run.
        runs: Timed runs.
        batch: Batch size of the timed runs (1).
        warmup: Untimed runs before them.
    """

    p50: float
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    runs: int | None = None
    batch: int | None = None
    warmup: int | None = None


class Throughput(_Part):
    """Samples per second at batch 1 and at ``batch_size``.

    Attributes:
        batch_1: Samples/s at batch 1 (from the median batch-1 latency).
        batch_N: Samples/s at ``batch_size``.
        batch_size: The batch of the batch-N runs.
        batch_N_ms_p50: Median latency of one batch-N run (ms).
        batch_N_runs: Timed batch-N runs.
    """

    batch_1: float
    batch_N: float
    batch_size: int
    batch_N_ms_p50: float | None = None
    batch_N_runs: int | None = None


class Memory(_Part):
    """Memory of the process that ran the timed inference (MiB).

    Attributes:
        peak_rss_mb: Peak resident set size.
        rss_before_load_mb: Resident size before the runtime and model were loaded (isolated).
        rss_after_load_mb: Resident size after loading (isolated).
        peak_rss_delta_mb: Peak minus the size before loading (isolated), else None.
        method: ``VmHWM`` or ``ru_maxrss`` (and a note when not isolated).
        isolated: Whether a fresh subprocess did the timing.
        tensorflow_loaded: Whether TensorFlow was imported in the timing process.
    """

    peak_rss_mb: float
    rss_before_load_mb: float | None = None
    rss_after_load_mb: float | None = None
    peak_rss_delta_mb: float | None = None
    method: str = ""
    isolated: bool | None = None
    tensorflow_loaded: bool | None = None


class Runtime(_Part):
    """The runner that ran the candidate (as :meth:`kfedge.runners.Runner.describe` says).

    Attributes:
        format: Model format.
        threads: Inference threads.
        inputs: Input tensor specs (name, shape, dtype...).
        outputs: Output tensor specs.
        providers: ONNX Runtime execution providers (ONNX only).
        version: Version of the runtime package.
        fallback_to_cpu: The target's accelerator (provider, delegate, device) was absent and
            the profile allowed the CPU instead: every figure is the CPU's (None: not recorded).
        precision: The precision the runtime computed float32 tensors in (``f32``, ``bf16``,
            ``f16``), as the runtime reported it (None: not recorded).
        requested_precision: The precision asked for, where the runtime may give another
            (OpenVINO on a CPU without bfloat16 runs a ``bf16`` request in ``f32``).
    """

    format: str = ""
    threads: int | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    providers: list[str] | None = None
    version: str = ""
    fallback_to_cpu: bool | None = None
    precision: str | None = None
    requested_precision: str | None = None


class Machine(_Part):
    """The measuring machine.

    Attributes:
        arch: CPU architecture (``x86_64``, ``aarch64``).
        cpu: CPU model.
        cpu_count: Logical cores.
        system: OS and kernel release.
        python: Python version.
    """

    arch: str = ""
    cpu: str = ""
    cpu_count: int | None = None
    system: str = ""
    python: str = ""


class PerClass(_Part):
    """Per-class precision, recall and support, indexed like ``classes``."""

    precision: list[float] = Field(default_factory=list)
    recall: list[float] = Field(default_factory=list)
    support: list[int] = Field(default_factory=list)


class SampleInput(_Part):
    """One model input, stored exactly (so the deploy step needs no dataset to smoke-test).

    Attributes:
        dtype: NumPy dtype string with byte order (``<f4``, ``|u1``).
        shape: The sample's shape (no batch dimension).
        data: Base64 of the sample's bytes in C order.
    """

    dtype: str
    shape: list[int]
    data: str

    @classmethod
    def from_array(cls, x: Any) -> SampleInput:
        """Store one sample (a NumPy array, no batch dimension)."""
        import base64

        import numpy as np

        a = np.ascontiguousarray(x)
        return cls(
            dtype=a.dtype.str, shape=list(a.shape), data=base64.b64encode(a.tobytes()).decode()
        )

    def to_array(self) -> Any:
        """The sample as a NumPy array, as stored.

        Raises:
            InvalidInputError: The bytes do not fit the dtype and shape.
        """
        import base64
        import binascii

        import numpy as np

        try:
            raw = base64.b64decode(self.data, validate=True)
            return np.frombuffer(raw, dtype=np.dtype(self.dtype)).reshape(self.shape).copy()
        except (binascii.Error, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"outputs_sample.input does not hold a {self.dtype} array of shape "
                f"{self.shape}: {exc}"
            ) from None


class SampleCorrectness(_Part):
    """Which scored samples the model got right, stored compactly for paired tests.

    Two evaluations of the same samples (same split, same labels in the same order) can be
    compared sample by sample (:func:`kfedge.stats.mcnemar`): a difference in accuracy is real
    only when the samples one model alone gets right outnumber the other's by more than chance.

    Attributes:
        count: Samples scored.
        bits: Base64 of the correctness bits packed eight per byte (NumPy ``packbits``, first
            sample in the highest bit).
        labels_sha256: The first 16 hex digits of the SHA-256 of the labels (int64, in order):
            two records describe the same samples only when these match.
        split: The scored split.
    """

    count: int
    bits: str
    labels_sha256: str = ""
    split: str = ""

    @classmethod
    def from_arrays(cls, correct: Any, labels: Any, split: str = "") -> SampleCorrectness:
        """Record per-sample correctness (booleans) of samples with these labels."""
        import base64
        import hashlib

        import numpy as np

        c = np.asarray(correct, dtype=bool).reshape(-1)
        y = np.ascontiguousarray(np.asarray(labels, dtype="<i8").reshape(-1))
        if y.size != c.size:
            raise InvalidInputError(f"{c.size} correctness values for {y.size} labels")
        return cls(
            count=int(c.size),
            bits=base64.b64encode(np.packbits(c).tobytes()).decode(),
            labels_sha256=hashlib.sha256(y.tobytes()).hexdigest()[:16],
            split=split,
        )

    def to_array(self) -> Any:
        """The per-sample correctness as a boolean NumPy array of ``count`` values.

        Raises:
            InvalidInputError: The bits do not hold ``count`` values.
        """
        import base64
        import binascii

        import numpy as np

        try:
            raw = np.frombuffer(base64.b64decode(self.bits, validate=True), dtype=np.uint8)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInputError(f"sample_correct.bits is not base64: {exc}") from None
        if raw.size != (self.count + 7) // 8:
            raise InvalidInputError(
                f"sample_correct holds {raw.size} bytes, expected {(self.count + 7) // 8} for "
                f"{self.count} samples"
            )
        return np.unpackbits(raw, count=self.count).astype(bool)

    def same_samples(self, other: SampleCorrectness) -> bool:
        """Whether both records describe the same samples (count, split and labels)."""
        return (
            self.count == other.count
            and self.split == other.split
            and bool(self.labels_sha256)
            and self.labels_sha256 == other.labels_sha256
        )


class OutputsSample(_Part):
    """The model's output for one sample, recorded for the deploy step's smoke test.

    Attributes:
        index: Index of the sample in its split.
        split: The split it was taken from.
        output_name: The model output the values come from.
        values: The output values (a batch-1 run).
        input: The sample itself (None in files written before it was recorded: the deploy
            step then reads it from the dataset).
    """

    index: int = 0
    split: str = "eval"
    output_name: str | None = None
    values: list[float]
    input: SampleInput | None = None


class Timing(_Part):
    """One timing block: what :mod:`kfedge.timing` measures of a candidate.

    Attributes:
        latency_ms: Batch-1 latency distribution.
        throughput: Samples per second at batch 1 and N.
        threads: Inference threads.
        memory: Memory of the timing process (None until measured).
        runtime: The runner that was timed (None until described).
    """

    latency_ms: LatencyStats
    throughput: Throughput
    threads: int | None = None
    memory: Memory | None = None
    runtime: Runtime | None = None


class Evaluation(_Part):
    """Accuracy, latency, size and memory of one candidate (:func:`kfedge.evaluate.evaluate`).

    Attributes:
        name: Candidate name (unique within a comparison).
        technique: Technique that made it (``baseline``, ``ptq-int8``, ``prune>ptq-int8``...).
        format: Model format (``tflite``, ``onnx``, ``keras``...).
        accuracy: Top-1 accuracy on the scored split (fraction).
        latency_ms: Batch-1 latency distribution.
        size_bytes: Model file (or directory) size.
        path: The evaluated path (candidate directory or model file).
        model_file: The model file inside it.
        parent: The candidate it was made from.
        params: The technique's parameters.
        candidate_stats: The statistics the technique recorded with the candidate.
        split: The scored split.
        classes: Class names.
        num_samples: Samples scored.
        top5: Top-5 accuracy (None below 10 classes).
        per_class: Per-class precision / recall / support.
        confusion_matrix: Rows: true class, columns: predicted class.
        throughput: Samples per second at batch 1 and N.
        threads: Inference threads of the timing.
        size_gzip_bytes: Size compressed with gzip -9.
        params_count: Parameter values.
        sparsity: Fraction of kernel values equal to zero (their zero point when quantized).
        sparsity_per_layer: The same per kernel.
        unique_weights: Distinct stored values per kernel.
        kernel_weights: Kernel values counted.
        weights_unavailable: Why the weight statistics (params, sparsity, unique weights)
            are absent: the node lacks the package that reads the format (``onnx`` is not in
            ``kfedge[serving]``, the edge image's install); accuracy and latency are unaffected.
        peak_rss_mb: Peak resident memory of the timing process (MiB).
        memory: Memory details.
        outputs_sample: The recorded output of the first sample.
        sample_correct: Which scored samples were right (for paired tests against the
            baseline); None in files written before it was recorded.
        runtime: The runner and its runtime version.
        machine: The measuring machine.
        isolated: Whether latency was timed in a fresh subprocess.
        seconds: Wall time of the evaluation.
        target: Target profile the evaluation ran for (set by the pipeline step).
    """

    name: str
    technique: str
    format: str
    accuracy: float
    latency_ms: LatencyStats
    size_bytes: int
    path: str | None = None
    model_file: str | None = None
    parent: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    candidate_stats: dict[str, Any] = Field(default_factory=dict)
    split: str | None = None
    classes: list[str] = Field(default_factory=list)
    num_samples: int | None = None
    top5: float | None = None
    per_class: PerClass | None = None
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    throughput: Throughput | None = None
    threads: int | None = None
    size_gzip_bytes: int | None = None
    params_count: int | None = None
    sparsity: float | None = None
    sparsity_per_layer: dict[str, float] = Field(default_factory=dict)
    unique_weights: dict[str, int] = Field(default_factory=dict)
    kernel_weights: int | None = None
    weights_unavailable: str | None = None
    peak_rss_mb: float | None = None
    memory: Memory | None = None
    outputs_sample: OutputsSample | None = None
    sample_correct: SampleCorrectness | None = None
    runtime: Runtime | None = None
    machine: Machine | None = None
    isolated: bool | None = None
    seconds: float | None = None
    target: str | None = None

    def to_json(self) -> str:
        """Indented JSON with sorted keys (what :func:`save_evaluation` writes)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def kfp_metrics(self) -> dict[str, float]:
        """The scalar metrics, as logged to a KFP ``Metrics`` artifact.

        Returns:
            accuracy, top5 (when measured), latency_p50/p90/p99_ms, size_mb and gzip_mb (1 MB =
            1,000,000 bytes), sparsity, throughput_batch_1 / throughput_batch_n, peak_rss_mb;
            a measurement the evaluation lacks is left out.
        """
        lat, thr = self.latency_ms, self.throughput
        values: dict[str, float | int | None] = {
            "accuracy": self.accuracy,
            "latency_p50_ms": lat.p50,
            "latency_p90_ms": lat.p90,
            "latency_p99_ms": lat.p99,
            "size_mb": self.size_bytes / MB,
            "gzip_mb": None if self.size_gzip_bytes is None else self.size_gzip_bytes / MB,
            "sparsity": self.sparsity,
            "throughput_batch_1": thr.batch_1 if thr else None,
            "throughput_batch_n": thr.batch_N if thr else None,
            "peak_rss_mb": self.peak_rss_mb,
            "top5": self.top5,
        }
        return {k: float(v) for k, v in values.items() if v is not None}

    def kfp_metadata(self) -> dict[str, Any]:
        """The metadata of the KFP ``evaluation`` artifact (shown next to it in the UI).

        Returns:
            name, technique, format, accuracy, size_bytes and latency_p50_ms.
        """
        return {
            "name": self.name,
            "technique": self.technique,
            "format": self.format,
            "accuracy": self.accuracy,
            "size_bytes": self.size_bytes,
            "latency_p50_ms": self.latency_ms.p50,
        }


#: An evaluation, or a dict shaped like its JSON (validated on the way in).
EvaluationLike = Evaluation | Mapping[str, Any]


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'evaluation'}: {e['msg']}"
        + ("" if e["type"] == "missing" else f" (got {e['input']!r})")
        for e in exc.errors()
    )


def as_evaluation(data: EvaluationLike, where: str = "evaluation") -> Evaluation:
    """An :class:`Evaluation` from itself or from a dict shaped like its JSON.

    Args:
        data: An evaluation, or a dict with the evaluation's keys.
        where: What to call it in an error (a file name, ``evaluation #2``).

    Returns:
        The evaluation.

    Raises:
        InvalidInputError: Not a mapping, a required key missing, or a value of the wrong type;
            the message names each.
    """
    if isinstance(data, Evaluation):
        return data
    if not isinstance(data, Mapping):
        raise InvalidInputError(
            f"{where} is not a kfedge evaluation: expected a JSON object, got {type(data).__name__}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise InvalidInputError(f"{where} is not a kfedge evaluation: missing keys {missing}")
    try:
        return Evaluation.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidInputError(
            f"{where} is not a valid kfedge evaluation: {_problems(exc)}"
        ) from None


def as_evaluations(evaluations: Iterable[EvaluationLike]) -> list[Evaluation]:
    """Evaluations to compare: at least one, each valid, no two with one name.

    Args:
        evaluations: Evaluations or dicts shaped like their JSON.

    Returns:
        The evaluations, in order.

    Raises:
        InvalidInputError: None given, an invalid one (``evaluation #i ...``), or a repeated
            name.
    """
    out = [as_evaluation(e, f"evaluation #{i}") for i, e in enumerate(evaluations)]
    if not out:
        raise InvalidInputError("no evaluations given; expected at least the baseline's")
    seen: set[str] = set()
    for ev in out:
        if ev.name in seen:
            raise InvalidInputError(
                f"two evaluations are named '{ev.name}'; candidate names must be unique"
            )
        seen.add(ev.name)
    return out


def save_evaluation(ev: EvaluationLike, path: str | Path) -> Path:
    """Write an evaluation as JSON (indented, sorted keys), atomically.

    Args:
        ev: The evaluation (or a dict shaped like one, validated first).
        path: Destination file (parent directories are created).

    Returns:
        The written path.
    """
    from kfedge.fsutil import write_text_atomic

    return write_text_atomic(path, as_evaluation(ev).to_json())


def _read_json(path: str | Path, what: str) -> tuple[Path, Any]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{what} file not found: {p}")
    try:
        return p, json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{p} is not {what} JSON file: {exc}") from exc


def load_evaluation(path: str | Path) -> Evaluation:
    """Read an evaluation JSON file (one written by any kfedge version since 0.1.0).

    Args:
        path: A file written by :func:`save_evaluation`.

    Returns:
        The evaluation.

    Raises:
        InvalidInputError: The file is missing, not JSON, or not an evaluation (the message
            names the missing keys or wrong values).
    """
    p, data = _read_json(path, "an evaluation")
    return as_evaluation(data, str(p))


def load_outputs_sample(path: str | Path) -> OutputsSample:
    """The recorded output of a JSON file that carries one: an evaluation or a selection.

    The select step copies the chosen candidate's ``outputs_sample`` into its selection JSON,
    so the deploy step can be given either file.

    Args:
        path: An evaluation or selection JSON file.

    Returns:
        The recorded sample (index, split, output_name, values).

    Raises:
        InvalidInputError: Missing, not JSON, or without a valid ``outputs_sample``.
    """
    p, data = _read_json(path, "an evaluation")
    rec = data.get("outputs_sample") if isinstance(data, dict) else None
    if not isinstance(rec, dict):
        raise InvalidInputError(
            f"{p} has no outputs_sample (expected {{index, split, output_name, values}} from "
            "kfedge's evaluate step)"
        )
    try:
        return OutputsSample.model_validate(rec)
    except ValidationError as exc:
        raise InvalidInputError(f"{p}: invalid outputs_sample: {_problems(exc)}") from None


def kfp_metrics(ev: EvaluationLike) -> dict[str, float]:
    """The scalar metrics of an evaluation (see :meth:`Evaluation.kfp_metrics`)."""
    return as_evaluation(ev).kfp_metrics()
