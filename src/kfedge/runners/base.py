"""The runner contract: one inference interface, tensor specs, input checks."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfedge.errors import InvalidInputError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None`` for a dynamic dimension) and numpy dtype name of a tensor."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; dynamic dimensions become -1."""
        return {
            "name": self.name,
            "shape": [-1 if d is None else int(d) for d in self.shape],
            "dtype": self.dtype,
        }


def _default_threads() -> int:
    env = os.environ.get("KFEDGE_THREADS")
    if env:
        return max(1, int(env))
    return max(1, os.cpu_count() or 1)


class Runner(ABC):
    """Runs one model on batches.

    Attributes:
        path: The model path.
        format: The model format (see :mod:`kfedge.formats`).
        inputs: What ``predict`` accepts (batch dimension first).
        outputs: What ``run`` returns.
        threads: Inference threads the runtime was given.
        precision: The precision the runtime computes float32 tensors in (``f32``, ``bf16``,
            ``f16``), as the runtime reports it or as its settings pin it; None: unknown.
    """

    format: str = ""
    precision: str | None = None

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = str(path)
        self.threads = threads or _default_threads()
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    # -- checking -------------------------------------------------------------------------------
    def check_input(self, name: str, value: Any) -> np.ndarray:
        """Check one input against its spec and return it as an array of the spec's dtype.

        Args:
            name: Input name.
            value: Array-like batch (batch dimension first).

        Returns:
            The array, cast to the input's dtype.

        Raises:
            InvalidInputError: Unknown input, wrong rank or shape, or non-numeric data.
        """
        spec = next((s for s in self.inputs if s.name == name), None)
        if spec is None:
            raise InvalidInputError(
                f"unknown input '{name}'; the model takes {[s.name for s in self.inputs]}"
            )
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"input '{name}' is not a rectangular array: {exc}") from exc
        if arr.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"input '{name}' must be numeric ({spec.dtype}), got {arr.dtype} data"
            )
        want = spec.shape
        if arr.ndim != len(want) or any(
            w is not None and i > 0 and w != g for i, (w, g) in enumerate(zip(want, arr.shape))
        ):
            shown = [-1 if d is None else d for d in want]
            raise InvalidInputError(
                f"input '{name}' expects shape {shown} (batch first, -1 = any), got "
                f"{list(arr.shape)}"
            )
        if arr.shape and arr.shape[0] == 0:
            raise InvalidInputError(f"input '{name}' has an empty batch")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"input '{name}' contains NaN or infinite values")
        return arr.astype(spec.dtype, copy=False)

    def _feeds(self, batch: Any) -> dict[str, np.ndarray]:
        if isinstance(batch, dict):
            missing = [s.name for s in self.inputs if s.name not in batch]
            extra = [k for k in batch if k not in {s.name for s in self.inputs}]
            if missing or extra:
                raise InvalidInputError(
                    f"the model takes inputs {[s.name for s in self.inputs]}; "
                    f"missing {missing}, unexpected {extra}"
                )
            return {k: self.check_input(k, v) for k, v in batch.items()}
        if len(self.inputs) != 1:
            raise InvalidInputError(
                f"the model has {len(self.inputs)} inputs {[s.name for s in self.inputs]}; "
                "pass a dict of arrays"
            )
        return {self.inputs[0].name: self.check_input(self.inputs[0].name, batch)}

    # -- running --------------------------------------------------------------------------------
    def run(self, batch: Any) -> dict[str, np.ndarray]:
        """Run a batch and return every output by name.

        Args:
            batch: One array (single-input models) or a dict of arrays by input name.

        Returns:
            Output arrays by name (float for quantized outputs).
        """
        return self._run(self._feeds(batch))

    def predict(self, batch: Any) -> np.ndarray:
        """Run a batch and return the first output."""
        return self.run(batch)[self.outputs[0].name]

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, Any]:
        """Format, threads and signatures as a JSON-friendly dict."""
        return {
            "format": self.format,
            "threads": self.threads,
            "precision": self.precision,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release runtime resources."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
