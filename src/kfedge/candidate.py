"""A candidate: one deployable model file plus the metadata that traces it to its baseline.

On disk a candidate is a directory (the KFP ``Model`` artifact path, or KServe's
``/mnt/models``) holding the model file and ``candidate.json``::

    <dir>/model.tflite | model.onnx | model.keras | saved_model/
    <dir>/candidate.json
    <dir>/keras/model.keras     (optional: the stripped Keras model a later step builds on)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfedge.errors import ModelFormatError, NotFoundError
from kfedge.formats import detect_format
from kfedge.fsutil import write_json_atomic

META_FILE = "candidate.json"
_MODEL_NAMES = ("model.tflite", "model.onnx", "model.keras", "model.h5", "saved_model")


@dataclass
class Candidate:
    """Metadata of one candidate model.

    Attributes:
        name: Unique, readable name (e.g. ``ptq-int8``, ``prune50-cluster16-int8``).
        technique: The technique chain, outermost last (e.g. ``prune>cluster>ptq-int8``).
        format: ``tflite`` / ``onnx`` / ``keras`` / ``savedmodel``.
        model_file: File name of the model inside the candidate directory.
        params: The technique parameters (validated config) that produced it.
        parent: Name of the candidate (or baseline) it was derived from.
        keras_file: Relative path of the stripped Keras model for later steps, if any.
        stats: Properties measured when it was made (sparsity reached, clusters, ...).
    """

    name: str
    technique: str
    format: str
    model_file: str
    params: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    keras_file: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)

    def kfp_metadata(self) -> dict[str, Any]:
        """Flat metadata for a KFP artifact (shown in the UI)."""
        meta: dict[str, Any] = {
            "name": self.name,
            "technique": self.technique,
            "format": self.format,
            "parent": self.parent or "",
            "params": json.dumps(self.params, sort_keys=True),
        }
        for k, v in self.stats.items():
            if isinstance(v, (int, float, str, bool)):
                meta[k] = v
        return meta


def save_candidate(cand: Candidate, directory: str | Path) -> Path:
    """Write ``candidate.json`` atomically into ``directory`` and return its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if not (d / cand.model_file).exists():
        raise ModelFormatError(f"candidate {cand.name}: {d / cand.model_file} does not exist")
    return write_json_atomic(d / META_FILE, cand.to_dict())


def artifact_parts(artifact: Any) -> tuple[Path, dict[str, Any] | None]:
    """The path and metadata dict of a KFP artifact (``.path``, ``.metadata``), or a plain path.

    Library entries that component bodies call take either, so they run without KFP too.

    Returns:
        The path, and the artifact's metadata dict (None for a plain path).
    """
    if hasattr(artifact, "path"):
        return Path(artifact.path), getattr(artifact, "metadata", None)
    return Path(artifact), None


def load_candidate(path: str | Path) -> Candidate:
    """Read the candidate metadata of a candidate directory."""
    p = Path(path)
    meta = p / META_FILE if p.is_dir() else p
    if not meta.is_file():
        raise NotFoundError(f"{path} is not a candidate directory (no {META_FILE})")
    try:
        return Candidate(**json.loads(meta.read_text()))
    except (ValueError, TypeError) as exc:  # bad JSON or UTF-8, not an object, wrong keys
        raise ModelFormatError(
            f"{meta} is not a valid {META_FILE} ({exc}); expected a JSON object with the "
            f"fields {', '.join(Candidate.__dataclass_fields__)}"
        ) from None


def model_digest(path: str | Path) -> str:
    """The content hash of a model, ``sha256:<hex>``: what the server reports as its version.

    Over the bytes of the model file; an OpenVINO IR (``NAME.xml``) also over its ``NAME.bin``;
    a directory (SavedModel) over every file in it, by relative path. The model server
    computes it on what it loaded and the smoke test compares it with the candidate's, so a
    passing smoke test proves the endpoint serves this candidate and not the one before it.

    Args:
        path: A model file (or candidate directory: its model file is hashed).
    """
    import hashlib

    p = model_path(path)  # a file stays itself, a SavedModel directory too
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
    elif p.suffix == ".xml" and p.with_suffix(".bin").is_file():
        files = [p, p.with_suffix(".bin")]
    else:
        files = [p]
    digest = hashlib.sha256()
    for f in files:
        if p.is_dir():  # file names only inside a directory; a file's name may change
            digest.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def model_path(path: str | Path) -> Path:
    """Resolve the model file of a candidate directory, a SavedModel or a plain model file.

    Args:
        path: Candidate directory, SavedModel directory, or model file.

    Returns:
        The path a runner can open.
    """
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"model not found: {p}")
    if p.is_file():
        return p
    if (p / META_FILE).is_file():
        return p / load_candidate(p).model_file
    if (p / "saved_model.pb").is_file():
        return p
    for name in _MODEL_NAMES:
        if (p / name).exists():
            return p / name
    files = [f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")]
    if len(files) == 1:
        detect_format(files[0])
        return files[0]
    # An OpenVINO IR is two files: NAME.xml and its weights NAME.bin (what KServe's storage
    # initializer leaves in /mnt/models for an IR uploaded without candidate.json).
    xml = [f for f in files if f.suffix == ".xml"]
    if len(files) == 2 and len(xml) == 1 and xml[0].with_suffix(".bin") in files:
        detect_format(xml[0])
        return xml[0]
    raise ModelFormatError(
        f"{p} is a directory with no model: expected {META_FILE}, a SavedModel, one of "
        f"{', '.join(_MODEL_NAMES)}, a single model file or an OpenVINO IR (NAME.xml with "
        f"NAME.bin); found {sorted(f.name for f in files)}"
    )


def keras_path(path: str | Path) -> Path:
    """The Keras model to build on: the candidate's stripped Keras file, or the model itself."""
    p = Path(path)
    if p.is_dir() and (p / META_FILE).is_file():
        cand = load_candidate(p)
        if cand.keras_file:
            return p / cand.keras_file
    return model_path(p)
