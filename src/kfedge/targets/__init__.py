"""Edge target profiles: where and how a model runs (node labels, taints, accelerator, formats).

A target is a YAML file. The ones kfedge ships live next to this module (one file per target,
the name is the file stem); users pass the path of their own file instead of a name, e.g. a
copy of ``kfedge targets show cpu-arm64`` with their own labels. Pipelines and deploy read
targets; nothing else hard-codes a node label.

Quantization modes (what the optimizer may produce for the target):

* ``fp32``: no quantization (the baseline export).
* ``fp16``: float16 weights.
* ``dynamic``: dynamic-range quantization (int8 weights, float activations).
* ``int8``: full-integer quantization (int8 weights and activations, calibrated).
* ``int8-full-integer-io`` / ``uint8-io``: with ``int8``, the full-integer model also takes
  and returns int8 / uint8 tensors (what the Edge TPU wants); the first one listed wins.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kfedge._version import IMAGE_REGISTRY, SERVING_IMAGE, __version__
from kfedge.errors import ConfigError, NotFoundError
from kfedge.targets.devices import DeviceNeeds

__all__ = [
    "FORMATS",
    "QUANTIZATION_MODES",
    "Accelerator",
    "DeviceNeeds",
    "Resources",
    "Target",
    "Toleration",
    "list_targets",
    "load_target",
    "target_yaml",
    "targets_table",
]

FORMATS = ("tflite", "onnx", "openvino")
QUANTIZATION_MODES = ("fp32", "fp16", "dynamic", "int8", "int8-full-integer-io", "uint8-io")
#: Modes that only qualify ``int8`` (the IO dtype of a full-integer model).
IO_MODES = ("int8-full-integer-io", "uint8-io")
ARCH_LABEL = "kubernetes.io/arch"
#: Placeholders ``runtime_image`` may use.
IMAGE_PLACEHOLDERS = {
    "serving_image": SERVING_IMAGE,
    "registry": IMAGE_REGISTRY,
    "version": __version__,
}

Format = Literal["tflite", "onnx", "openvino"]
QuantizationMode = Literal["fp32", "fp16", "dynamic", "int8", "int8-full-integer-io", "uint8-io"]

# Kubernetes label syntax: optional DNS-subdomain prefix + "/" + name (<= 63 chars).
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY_RE = re.compile(rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$")
_LABEL_VALUE_RE = re.compile(rf"^({_LABEL_NAME})?$")
_RESOURCE_NAME_RE = re.compile(rf"^({_DNS_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_EXTENDED_RESOURCE_RE = re.compile(rf"^{_DNS_SUBDOMAIN}/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_QUANTITY_RE = re.compile(
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$"
)
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _matching(pattern: re.Pattern[str], value: str, expected: str) -> str:
    """``value`` when ``pattern`` matches it, else a ValueError saying it is not ``expected``."""
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not {expected}")
    return value


def _check_label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if not _LABEL_KEY_RE.match(key) or len(prefix) > 253 or len(name) > 63:
        raise ValueError(
            f"{key!r} is not a Kubernetes label key ([prefix/]name, name <= 63 characters "
            "of letters, digits, '-', '_', '.')"
        )
    return key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Toleration(_Strict):
    """A Kubernetes toleration (fields as in the Pod spec, in snake_case).

    Attributes:
        key: Taint key; empty only with ``Exists`` (then it tolerates every taint).
        operator: ``Equal`` (key and value match) or ``Exists`` (key matches, no value).
        value: Taint value for ``Equal``.
        effect: Taint effect to tolerate; None tolerates all effects.
        toleration_seconds: With ``NoExecute``: how long the pod stays once tainted.
    """

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @field_validator("key")
    @classmethod
    def _key_syntax(cls, v: str | None) -> str | None:
        return _check_label_key(v) if v else None

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError(f"operator Exists takes no value (got value {self.value!r})")
        if self.operator == "Equal" and not self.key:
            raise ValueError("operator Equal needs a key")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("toleration_seconds applies only to effect NoExecute")
        return self

    def to_k8s(self) -> dict[str, Any]:
        """The toleration as in a Pod spec (camelCase keys, unset fields left out)."""
        out: dict[str, Any] = {"operator": self.operator}
        if self.key:
            out["key"] = self.key
        if self.value is not None and self.operator == "Equal":
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return {
            k: out[k]
            for k in ("key", "operator", "value", "effect", "tolerationSeconds")
            if k in out
        }


class Accelerator(_Strict):
    """An accelerator the serving / evaluation pod requests.

    Attributes:
        resource: Extended resource name the device plugin registers (``nvidia.com/gpu``).
        count: How many to request (>= 1).
        type: What to pass to KFP's ``set_accelerator_type``; defaults to ``resource``.
    """

    resource: str
    count: int = Field(default=1, ge=1)
    type: str | None = None

    @field_validator("resource")
    @classmethod
    def _resource_syntax(cls, v: str) -> str:
        return _matching(
            _EXTENDED_RESOURCE_RE, v, "an extended resource name (domain/name, e.g. nvidia.com/gpu)"
        )

    @property
    def accelerator_type(self) -> str:
        """The accelerator type for KFP (``type``, else the resource name)."""
        return self.type or self.resource


class Resources(_Strict):
    """Kubernetes resource requests and limits for the serving container.

    Attributes:
        requests: e.g. ``{"cpu": "500m", "memory": "256Mi"}``.
        limits: e.g. ``{"memory": "1Gi"}``.
    """

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    @field_validator("requests", "limits", mode="before")
    @classmethod
    def _numbers_as_strings(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {
                k: str(x) if isinstance(x, int | float) and not isinstance(x, bool) else x
                for k, x in v.items()
            }
        return v

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, v: dict[str, str]) -> dict[str, str]:
        for name, qty in v.items():
            _matching(_RESOURCE_NAME_RE, name, "a resource name (cpu, memory, vendor.com/name)")
            if not _QUANTITY_RE.match(qty):
                raise ValueError(
                    f"{name}: {qty!r} is not a Kubernetes quantity (e.g. 500m, 1, 256Mi, 2Gi)"
                )
        return v


class Target(_Strict):
    """An edge target profile.

    Attributes:
        name: Profile name (lowercase, digits, '-'); the file stem for shipped profiles.
        description: One line for ``kfedge targets``.
        arch: CPU architecture of the node (``amd64`` or ``arm64``).
        node_selector: Node labels the pods must match (``kubernetes.io/arch`` is implied by
            ``arch`` and added by :meth:`k8s_node_selector`).
        tolerations: Taints the pods tolerate.
        accelerator: Accelerator resource to request, or None for CPU only.
        formats: Deployable model formats, preferred first.
        quantization: Quantization modes the optimizer may produce, preferred first.
        onnx_providers: ONNX Runtime execution providers, in priority order.
        onnx_provider_options: Options per provider (e.g. OpenVINO ``device_type: NPU``).
        tflite_delegate: External TFLite delegate library (``libedgetpu.so.1``), or None.
        runtime_image: Serving image; ``{serving_image}``, ``{registry}`` and ``{version}``
            are replaced by the values from :mod:`kfedge._version`.
        serving_resources: Requests and limits of the serving container.
        threads: Inference threads to use on the device (None: the runtime's default).
        notes: Free text: prerequisites, caveats.
        devices: What pods need to reach the device: RuntimeClass, device-plugin resources,
            host device paths (see :mod:`kfedge.targets.devices`).
        isa: The nodes' CPU instruction set when known (``x86-64-avx512-vnni``, ``arm64-dotprod``;
            see :mod:`kfedge.cpu`); ONNX Runtime INT8 weights follow it. None: ``arch`` alone,
            the settings accurate on every CPU of that architecture.
        allow_cpu_fallback: When the node lacks the accelerator the profile asks for (ONNX
            Runtime provider, TFLite delegate, OpenVINO device): False (default) fails the
            evaluation in one line; True runs on the CPU and every figure is marked as CPU.
        unsupported_formats: Formats whose runtime cannot run on these nodes, each with why
            (provision's refusal quotes it), e.g. ``openvino`` on JetPack 5's glibc.
    """

    name: str
    description: str = Field(min_length=1)
    arch: Literal["amd64", "arm64"]
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    accelerator: Accelerator | None = None
    formats: list[Format] = Field(min_length=1)
    quantization: list[QuantizationMode] = Field(min_length=1)
    onnx_providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    onnx_provider_options: dict[str, dict[str, str]] = Field(default_factory=dict)
    tflite_delegate: str | None = None
    runtime_image: str = Field(default="{serving_image}", validate_default=True)
    serving_resources: Resources = Field(default_factory=Resources)
    threads: int | None = Field(default=None, ge=1)
    notes: str = ""
    devices: DeviceNeeds = Field(default_factory=DeviceNeeds)
    isa: str | None = None
    allow_cpu_fallback: bool = False
    unsupported_formats: dict[Format, str] = Field(default_factory=dict)

    @field_validator("isa")
    @classmethod
    def _isa_name(cls, v: str | None, info: Any) -> str | None:
        if v is None:
            return None
        from kfedge.cpu import parse_isa

        if v.strip().lower() == "host":
            raise ValueError("isa names the nodes' instruction set (e.g. x86-64-avx2), not 'host'")
        isa = parse_isa(v)
        if isa.arch != {"amd64": "x86-64", "arm64": "arm64"}.get(info.data.get("arch", "")):
            raise ValueError(f"isa {v!r} contradicts arch {info.data.get('arch')}")
        return isa.name

    @field_validator("name")
    @classmethod
    def _name_syntax(cls, v: str) -> str:
        return _matching(_NAME_RE, v, "a target name (lowercase letters, digits and '-', <= 63)")

    @field_validator("node_selector", mode="before")
    @classmethod
    def _selector_values_as_strings(cls, v: Any) -> Any:
        # YAML reads `true` / `1` unquoted as bool / int; label values are strings.
        if isinstance(v, dict):
            return {
                k: str(x).lower()
                if isinstance(x, bool)
                else str(x)
                if isinstance(x, int | float)
                else x
                for k, x in v.items()
            }
        return v

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            _check_label_key(key)
            if not _LABEL_VALUE_RE.match(value):
                raise ValueError(
                    f"label {key}: {value!r} is not a Kubernetes label value (<= 63 characters)"
                )
        return v

    @field_validator("formats", "quantization", "onnx_providers")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            raise ValueError(f"lists {dupes} more than once")
        return v

    @field_validator("onnx_providers")
    @classmethod
    def _providers(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if not re.fullmatch(r"[A-Za-z0-9]+ExecutionProvider", p)]
        if bad:
            raise ValueError(
                f"{bad} are not ONNX Runtime provider names (like CPUExecutionProvider)"
            )
        return v

    @field_validator("runtime_image")
    @classmethod
    def _expand_image(cls, v: str) -> str:
        try:
            image = v.format(**IMAGE_PLACEHOLDERS)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{v!r} uses an unknown placeholder {exc}; known: "
                + ", ".join("{" + k + "}" for k in IMAGE_PLACEHOLDERS)
            ) from None
        if not image or any(c.isspace() for c in image):
            raise ValueError(f"{image!r} is not an image reference")
        return image

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        arch_label = self.node_selector.get(ARCH_LABEL)
        if arch_label is not None and arch_label != self.arch:
            raise ValueError(
                f"node_selector {ARCH_LABEL}={arch_label} contradicts arch {self.arch}"
            )
        io = [m for m in self.quantization if m in IO_MODES]
        if io and "int8" not in self.quantization:
            raise ValueError(
                f"quantization lists {io} (the IO of a full-integer model) but not 'int8'"
            )
        if "onnx" in self.formats and not self.onnx_providers:
            raise ValueError("formats include onnx but onnx_providers is empty")
        stray = sorted(set(self.onnx_provider_options) - set(self.onnx_providers))
        if stray:
            raise ValueError(
                f"onnx_provider_options names providers not in onnx_providers: {stray}"
            )
        return self

    @property
    def openvino_device(self) -> str:
        """The OpenVINO device OpenVINO IR models run on (``CPU``, ``GPU``, ``NPU``).

        Read from the ``OpenVINOExecutionProvider`` options' ``device_type`` (``GPU_FP16`` ->
        ``GPU``), so ONNX and IR candidates of one profile use the same device; ``CPU`` when
        the profile names none.
        """
        ov = self.onnx_provider_options.get("OpenVINOExecutionProvider", {})
        return str(ov.get("device_type") or "CPU").split("_")[0]

    def k8s_node_selector(self) -> dict[str, str]:
        """The node selector with ``kubernetes.io/arch`` set from ``arch``."""
        return {ARCH_LABEL: self.arch, **self.node_selector}

    def k8s_tolerations(self) -> list[dict[str, Any]]:
        """The tolerations as in a Pod spec: dicts with key / operator / value / effect."""
        return [t.to_k8s() for t in self.tolerations]

    def k8s_resources(self) -> dict[str, dict[str, str]]:
        """Serving requests and limits, with the accelerator added to the limits."""
        limits = dict(self.serving_resources.limits)
        if self.accelerator is not None:
            limits[self.accelerator.resource] = str(self.accelerator.count)
        out = {"requests": dict(self.serving_resources.requests), "limits": limits}
        return {k: v for k, v in out.items() if v}

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-friendly data (the YAML file's shape)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- loading


def _shipped_dir() -> Any:
    return resources.files(__name__)


def list_targets() -> list[str]:
    """Names of the target profiles kfedge ships, sorted.

    Returns:
        The names (YAML file stems).
    """
    return sorted(
        entry.name[: -len(".yaml")]
        for entry in _shipped_dir().iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    )


def _looks_like_path(value: str | os.PathLike[str]) -> bool:
    if not isinstance(value, str):
        return True
    return value.endswith((".yaml", ".yml")) or "/" in value or os.sep in value


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _explain(exc: ValidationError) -> str:
    nested: dict[str, type[BaseModel]] = {
        "tolerations": Toleration,
        "accelerator": Accelerator,
        "serving_resources": Resources,
    }
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = _where(loc)
        if err["type"] == "extra_forbidden":
            model = nested.get(str(loc[0]), Target) if len(loc) > 1 else Target
            problems.append(f"{where}: unknown field (allowed: {', '.join(model.model_fields)})")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        if err["type"] in ("literal_error", "enum") and isinstance(given, str | int | float | bool):
            msg += f" (got {given!r})"
        problems.append(f"{where}: {msg}")
    return "; ".join(problems)


def _from_data(data: Any, source: str, default_name: str) -> Target:
    if data is None:
        raise ConfigError(f"target file {source} is empty; expected a mapping of target fields")
    if not isinstance(data, dict):
        raise ConfigError(
            f"target file {source} holds a {type(data).__name__}; "
            "expected a mapping of target fields"
        )
    data = {"name": default_name, **data}
    try:
        return Target.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"target file {source}: {_explain(exc)}") from None


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"target file {source} is not valid YAML{where}: {problem}") from None


def load_target(name_or_path: str | os.PathLike[str] | Target) -> Target:
    """Load a shipped target by name, or a user's target YAML file by path.

    Args:
        name_or_path: A name from :func:`list_targets`, or a path to a YAML file (anything
            ending in ``.yaml`` / ``.yml`` or containing a ``/``). A :class:`Target` is
            returned as it is.

    Returns:
        The validated target. A file without ``name`` is named after its stem.

    Raises:
        NotFoundError: Unknown name (the message lists the available ones) or missing file.
        ConfigError: The file is not valid YAML or not a valid target (the message names the
            file and the field at fault).
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise NotFoundError(f"target file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read target file {path}: {exc}") from None
        return _from_data(_parse_yaml(text, str(path)), str(path), path.stem)
    name = str(name_or_path).strip()
    available = list_targets()
    if name not in available:
        raise NotFoundError(
            f"unknown target {name!r}; available: {', '.join(available)} "
            "(or pass the path of your own target YAML file)"
        )
    entry = _shipped_dir().joinpath(f"{name}.yaml")
    source = f"{name}.yaml (shipped with kfedge)"
    target = _from_data(_parse_yaml(entry.read_text(encoding="utf-8"), source), source, name)
    if target.name != name:
        raise ConfigError(f"target file {source}: name {target.name!r} differs from the file name")
    return target


# --------------------------------------------------------------------------- display


def targets_table() -> str:
    """A plain-text table of the shipped targets (for ``kfedge targets``).

    Returns:
        The table, one header line and one line per target.
    """
    rows = [("NAME", "ARCH", "ACCELERATOR", "FORMATS", "QUANTIZATION", "DESCRIPTION")]
    for name in list_targets():
        t = load_target(name)
        accel = f"{t.accelerator.resource} x{t.accelerator.count}" if t.accelerator else "-"
        rows.append(
            (t.name, t.arch, accel, ",".join(t.formats), ",".join(t.quantization), t.description)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def target_yaml(target: Target | str) -> str:
    """The target as YAML (for ``kfedge targets show NAME``); loadable again as a user file.

    Args:
        target: A :class:`Target` or a name / path for :func:`load_target`.

    Returns:
        YAML text.
    """
    t = load_target(target)
    data = t.to_dict()
    data["tolerations"] = [tol.model_dump(mode="json", exclude_none=True) for tol in t.tolerations]
    header = f"# kfedge target profile {t.name!r}: edit and pass the file path as the target.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88)
