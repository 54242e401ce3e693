"""Score a classifier on a split: top-1 / top-5 accuracy, per-class figures, confusion matrix.

The split is streamed through an open :class:`kfedge.runners.Runner` in batches. The output of
the first sample is recorded from a batch-1 run, as the deploy step's smoke test sends it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from kfedge.data import DatasetInfo, iter_split, split_path
from kfedge.errors import DataError, ModelFormatError
from kfedge.evaluation import OutputsSample, PerClass, SampleCorrectness, SampleInput
from kfedge.runners import Runner


class Scores(BaseModel):
    """What :func:`score` measures.

    Attributes:
        num_samples: Samples scored.
        accuracy: Top-1 accuracy (fraction).
        top5: Top-5 accuracy (None below 10 classes).
        per_class: Per-class precision, recall and support.
        confusion_matrix: Rows: true class, columns: predicted class.
        outputs_sample: The model output for the first sample (batch-1 run).
        sample_correct: Which samples were right, in order (for paired tests such as
            McNemar's against the baseline on the same samples).
    """

    num_samples: int
    accuracy: float
    top5: float | None
    per_class: PerClass
    confusion_matrix: list[list[int]]
    outputs_sample: OutputsSample
    sample_correct: SampleCorrectness


def num_classes(runner: Runner, dataset: str | Path, info: DatasetInfo | None) -> int:
    """The number of classes: the model output's width, checked against the dataset's classes.

    Args:
        runner: The open model.
        dataset: The dataset (for messages).
        info: Its dataset.json, when it has one.

    Returns:
        The number of classes.

    Raises:
        DataError: The dataset names a different number of classes than the model outputs.
        ModelFormatError: Neither the model nor the dataset tells the number of classes.
    """
    classes = list(info.classes) if info is not None else None
    out_shape = runner.outputs[0].shape
    num_out = out_shape[-1] if len(out_shape) >= 2 else None
    if classes is not None and num_out is not None and num_out != len(classes):
        raise DataError(
            f"{dataset} has {len(classes)} classes, but the model output "
            f"'{runner.outputs[0].name}' has {num_out} values per sample"
        )
    if num_out is None and classes is None:
        raise ModelFormatError(
            f"{runner.path}: cannot tell the number of classes (output shape "
            f"{[-1 if d is None else d for d in out_shape]}) and the dataset has no "
            "dataset.json naming them"
        )
    return int(num_out if num_out is not None else len(classes or []))


def score(
    runner: Runner,
    dataset: str | Path,
    split: str,
    batch_size: int,
    limit: int | None,
    n_classes: int,
) -> Scores:
    """Stream a split through the runner and score its predictions.

    Args:
        runner: The open model.
        dataset: Split dataset directory (or .npz).
        split: The split to score.
        batch_size: Samples per run.
        limit: Score only the first ``limit`` samples.
        n_classes: Number of classes (labels must lie in ``[0, n_classes)``).

    Returns:
        The scores.

    Raises:
        DataError: A label out of range, or an empty split.
    """
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    top5_hits = 0
    seen = 0
    first: np.ndarray | None = None
    first_x: np.ndarray | None = None  # the sample ``first`` is the output of
    hits: list[np.ndarray] = []  # per-sample correctness, batch by batch
    labels: list[np.ndarray] = []
    where = str(split_path(dataset, split))
    for bx, by in iter_split(dataset, split, batch_size):
        if limit is not None:
            bx, by = bx[: limit - seen], by[: limit - seen]
        if len(bx) == 0:
            break
        if by.min() < 0 or by.max() >= n_classes:
            raise DataError(
                f"{where}: labels must lie in [0, {n_classes}) (the model's classes), found "
                f"range [{by.min()}, {by.max()}]"
            )
        out = np.asarray(runner.predict(bx), dtype=np.float64).reshape(len(bx), -1)
        if first is None:
            # recorded from a batch-1 run, as the deploy smoke test sends it: some runtimes
            # (ORT dynamic quantization) scale activations per batch
            first = np.asarray(runner.predict(bx[:1]), dtype=np.float64).reshape(-1)
            first_x = bx[0]
        pred = out.argmax(axis=1)
        np.add.at(cm, (by, pred), 1)
        hits.append(pred == by)
        labels.append(by)
        if n_classes >= 10:
            top5 = np.argsort(-out, axis=1, kind="stable")[:, :5]
            top5_hits += int(np.sum(top5 == by[:, None]))
        seen += len(bx)
        if limit is not None and seen >= limit:
            break
    if seen == 0 or first is None:
        raise DataError(f"{where}: the split is empty (expected at least one sample)")
    diag = np.diag(cm).astype(np.float64)
    col = cm.sum(axis=0).astype(np.float64)
    row = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(diag, col, out=np.zeros_like(diag), where=col > 0)
    recall = np.divide(diag, row, out=np.zeros_like(diag), where=row > 0)
    return Scores(
        num_samples=seen,
        accuracy=float(diag.sum() / seen),
        top5=float(top5_hits / seen) if n_classes >= 10 else None,
        per_class=PerClass(
            precision=[round(float(v), 6) for v in precision],
            recall=[round(float(v), 6) for v in recall],
            support=[int(v) for v in row],
        ),
        confusion_matrix=cm.tolist(),
        outputs_sample=OutputsSample(
            index=0,
            split=split,
            output_name=runner.outputs[0].name,
            values=[float(v) for v in first],
            input=SampleInput.from_array(first_x),
        ),
        sample_correct=SampleCorrectness.from_arrays(
            np.concatenate(hits), np.concatenate(labels), split
        ),
    )
