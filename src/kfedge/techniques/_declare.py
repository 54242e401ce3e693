"""The technique declaration: what a technique is (its capabilities) and its one lifecycle.

A technique is a subclass of :class:`Technique` that states, once, what it is: its name,
description, parameter model (``Config``), the format and quantization mode it produces,
whether it fine-tunes, the KFP family component that exposes it, the report group it belongs
to, and its ``transform``. Defining the subclass registers it (:data:`REGISTRY`); provision,
the family components and the report read these declarations instead of lists of names.

The lifecycle is here and nowhere else: validate the config, resolve the source model, check
model and data (cheap, before any heavy work), transform into a staging directory, record the
output's stats, and write ``candidate.json``.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel

from kfedge.candidate import Candidate
from kfedge.errors import ConfigError
from kfedge.techniques._base import (
    KERAS_FILE,
    Source,
    TechniqueConfig,
    finish,
    resolve_source,
    staging,
    validate,
)

OutputFormat = Literal["tflite", "onnx", "openvino"]
QuantMode = Literal["fp32", "fp16", "int8", "dynamic"]
Group = Literal["PTQ", "QAT"]

#: Technique name -> declaration, in listing order (``rank``, then name).
REGISTRY: dict[str, Technique] = {}


class Technique:
    """Base of every technique declaration.

    A technique declares these class attributes, as class keywords
    (``class PtqFp16(TfliteConversion, name="ptq-fp16", quant_mode="fp16")``) or in its body;
    declaring ``name`` registers it.

    Attributes:
        name: Technique name (``ptq-int8``); also the last step of its candidates' chain.
        description: One line for ``kfedge techniques`` (default: the class docstring).
        Config: Its pydantic parameter model (``extra="forbid"``).
        output_format: ``tflite``, ``onnx`` or ``openvino`` (IR): what the deployable file is.
        quant_mode: ``fp32``, ``fp16``, ``int8`` or ``dynamic``: what provision matches
            against the target's quantization modes.
        needs_data: Whether it reads the split dataset.
        fine_tunes: Whether it trains (takes ``epochs``).
        family: The KFP family component that exposes it (``quantize``...), or None.
        family_mode: Its value of that component's ``mode`` input (default: ``name``).
        group: The report group (``PTQ`` / ``QAT``), or None.
        rank: Listing order (``kfedge techniques``, the auto plan's fallback order).
        needs_isa: The instruction set the target's nodes must state (their profile's ``isa``)
            for provision to plan it (``x86-64-bf16`` for a bfloat16 compute mode), or None.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type[TechniqueConfig]] = TechniqueConfig
    output_format: ClassVar[OutputFormat] = "tflite"
    quant_mode: ClassVar[QuantMode] = "fp32"
    needs_data: ClassVar[bool] = False
    fine_tunes: ClassVar[bool] = False
    family: ClassVar[str | None] = None
    family_mode: ClassVar[str | None] = None
    group: ClassVar[Group | None] = None
    rank: ClassVar[int] = 1000
    needs_isa: ClassVar[str | None] = None

    def __init_subclass__(cls, **declared: Any) -> None:
        """Set the declared class attributes (``class X(Technique, name="x", rank=5)``).

        A class that declares a ``name`` is registered.
        """
        known = {a for k in cls.__mro__ for a in vars(k).get("__annotations__", {})}
        for key, value in declared.items():
            if key not in known:
                raise TypeError(f"{cls.__name__}: {key!r} is not one of {sorted(known)}")
            setattr(cls, key, value)
        super().__init_subclass__()
        if "name" in cls.__dict__:
            if "description" not in cls.__dict__:  # the docstring, on one line
                cls.description = " ".join((cls.__doc__ or "").split())
            cls.derive()
            register(cls())

    @classmethod
    def derive(cls) -> None:
        """Complete a declaration from what it declared (a family base may override this)."""

    # -- what it produces ---------------------------------------------------------------------
    @property
    def model_file(self) -> str:
        """The deployable file's name inside the candidate directory."""
        return f"model.{self.output_format}"

    @property
    def output(self) -> tuple[str, str]:
        """``(output_format, quant_mode)``."""
        return self.output_format, self.quant_mode

    def own_name(self, cfg: Any) -> str:
        """The candidate name this config gets (before a parent's prefix)."""
        return self.name

    def steps(self, cfg: Any) -> str:
        """The chain steps this run adds (``prune>ptq-int8`` for an INT8 pruning run)."""
        return self.name

    # -- lifecycle ----------------------------------------------------------------------------
    def check(self, src: Source, data: str | Path | None, cfg: Any) -> None:
        """Refuse a model or dataset the technique cannot take, before any heavy work."""

    def transform(self, src: Source, data: Path | None, cfg: Any, work: Path) -> dict[str, Any]:
        """Write ``work / self.model_file`` (and optionally the stripped Keras model).

        Args:
            src: The resolved source model.
            data: The split dataset, or None.
            cfg: The validated config.
            work: The staging directory (the candidate directory once it succeeds).

        Returns:
            Stats of the run (fine-tune time, sparsity reached...).
        """
        raise NotImplementedError(f"{type(self).__name__} declares no transform")

    def output_stats(self, path: Path) -> dict[str, Any]:
        """Stats read back from the written model (weight dtypes, ops...)."""
        if self.output_format == "tflite":
            from kfedge.techniques._base import tflite_stats

            return tflite_stats(path)
        from kfedge.techniques._onnx import onnx_stats

        return onnx_stats(path)

    def validate(self, params: Any) -> Any:
        """The validated config for ``params`` (dict, None or a Config)."""
        return validate(self.Config, params, self.name)

    def apply(
        self, model: str | Path, data: str | Path | None, config: Any, out_dir: str | Path
    ) -> Candidate:
        """Run the technique once and write its candidate directory.

        Args:
            model: Candidate directory or model file.
            data: Split dataset directory, or None.
            config: The config, its dict, or None for the defaults.
            out_dir: Candidate directory to write; on failure nothing is written there.

        Returns:
            The written candidate.
        """
        cfg = self.validate(config)
        src = resolve_source(model)
        self.check(src, data, cfg)
        t0 = time.perf_counter()
        with staging(out_dir) as work:
            stats = self.transform(src, None if data is None else Path(data), cfg, work)
            stats = {**stats, **self.output_stats(work / self.model_file)}
            return finish(
                work,
                src=src,
                own_name=self.own_name(cfg),
                steps=self.steps(cfg),
                config=cfg,
                model_file=self.model_file,
                stats=stats,
                keras_file=KERAS_FILE if (work / KERAS_FILE).is_file() else None,
                started=t0,
            )

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON-friendly data (with the parameters' JSON schema)."""
        return {
            "name": self.name,
            "description": self.description,
            "needs_data": self.needs_data,
            "output_format": self.output_format,
            "quant_mode": self.quant_mode,
            "fine_tunes": self.fine_tunes,
            "family": self.family,
            "group": self.group,
            "needs_isa": self.needs_isa,
            "params": self.Config.model_json_schema(),
        }

    def __repr__(self) -> str:
        return f"<technique {self.name}>"


def register(technique: Technique) -> Technique:
    """Add a declaration to :data:`REGISTRY` (done by defining a :class:`Technique` subclass).

    Raises:
        ConfigError: Another class already declares that name.
    """
    if not isinstance(technique.Config, type) or not issubclass(technique.Config, BaseModel):
        raise TypeError(f"technique {technique.name}: Config must be a pydantic model class")
    for attr, allowed in (
        ("output_format", get_args(OutputFormat)),
        ("quant_mode", get_args(QuantMode)),
        ("group", (None, *get_args(Group))),
    ):
        if getattr(technique, attr) not in allowed:
            raise TypeError(
                f"technique {technique.name}: {attr} {getattr(technique, attr)!r} is not one of "
                f"{list(allowed)}"
            )
    old = REGISTRY.get(technique.name)
    if old is not None and _qualname(old) != _qualname(technique):
        raise ConfigError(
            f"technique {technique.name!r} is declared twice: {_qualname(old)} and "
            f"{_qualname(technique)}"
        )
    REGISTRY[technique.name] = technique
    ordered = sorted(REGISTRY.values(), key=lambda t: (t.rank, t.name))
    REGISTRY.clear()
    REGISTRY.update((t.name, t) for t in ordered)
    return technique


def _qualname(t: Technique) -> str:
    return f"{type(t).__module__}.{type(t).__qualname__}"


def discover(path: Iterable[str], package: str) -> list[str]:
    """Import every public module of a package, so that its declarations register.

    Args:
        path: The package's ``__path__``.
        package: The package's dotted name.

    Returns:
        The imported module names.
    """
    names = [m.name for m in pkgutil.iter_modules(list(path)) if not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
