"""The CPU instruction set a model will run on, and the ONNX Runtime INT8 settings that suit it.

ONNX Runtime runs an INT8 convolution / matmul with uint8 activations and int8 weights (U8S8;
a QDQ model with int8 activations is turned into U8S8 on x86 too). On x86-64 CPUs without VNNI
(AVX2, AVX-512F, SSE4.1) its kernels multiply with ``VPMADDUBSW``, which adds two u8 x s8
products into a *saturating* int16: two products reach 2 x 255 x 127 = 64770 > 32767, the sum
clips, and accuracy can drop by points (measured: 98.1 % -> 93.6 % on the sample). VNNI
(``VPDPBUSD``) accumulates in int32 and Arm's dot-product / widening kernels do not saturate.

ONNX Runtime documents two remedies: ``reduce_range`` (7-bit weights, so a pair sum stays
below 2 x 255 x 63 = 32130) or uint8 weights (U8U8, another kernel). kfedge uses
``reduce_range`` whenever the model may run on an x86-64 CPU without VNNI, which includes every
x86-64 CPU whose extensions nobody stated: the default is the setting that is accurate on all of
them. A target profile states its ISA with ``isa`` (e.g. ``x86-64-avx512-vnni``), else its
``arch`` gives ``x86-64`` or ``arm64``.

ISA names: the architecture (``x86-64``, ``arm64``) followed by the extensions known to be
there, e.g. ``x86-64-avx2``, ``x86-64-avx512-vnni``, ``arm64-dotprod``. ``host`` means the
CPU this code runs on (:func:`detect_isa`).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from kfedge.errors import ConfigError

#: Architectures and the extensions an ISA name may list, in the order names spell them.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "x86-64": ("avx2", "avx512", "vnni", "amx", "bf16"),
    "arm64": ("dotprod", "i8mm", "fp16", "bf16"),
}
_MACHINES = {"x86_64": "x86-64", "amd64": "x86-64", "aarch64": "arm64", "arm64": "arm64"}
#: /proc/cpuinfo flag -> extension (x86 ``flags`` line, Arm ``Features`` line).
_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512",
    "avx512_vnni": "vnni",
    "avx_vnni": "vnni",
    "amx_int8": "amx",
    "avx512_bf16": "bf16",
    "amx_bf16": "bf16",
    "asimddp": "dotprod",
    "i8mm": "i8mm",
    "asimdhp": "fp16",
    "bf16": "bf16",
}
#: The /proc/cpuinfo flags that move INT8 speed and accuracy (what reports list).
CPUINFO_FLAGS: tuple[str, ...] = tuple(_FLAGS)


@dataclass(frozen=True)
class Isa:
    """An instruction set: the architecture and the extensions known to be present.

    Attributes:
        arch: ``x86-64`` or ``arm64``.
        extensions: Extensions known to be there (an unlisted one may still be present).
    """

    arch: str
    extensions: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """The ISA name, e.g. ``x86-64-avx2-vnni``."""
        known = [e for e in EXTENSIONS[self.arch] if e in self.extensions]
        return "-".join([self.arch, *known])

    @property
    def vnni(self) -> bool:
        """Whether int8 dot products accumulate in int32 (x86 VNNI / AMX)."""
        return bool({"vnni", "amx"} & self.extensions)

    @property
    def reduced_float(self) -> str | None:
        """The reduced float precision runtimes pick by default on this ISA, if any.

        OpenVINO's CPU plugin computes FP32 models in ``bf16`` on x86 CPUs with AVX512_BF16 or
        AMX and in ``f16`` on Armv8.2 cores with half-precision arithmetic (Cortex-A76,
        Neoverse), unless asked for ``f32`` (kfedge's runners always ask).
        """
        if "bf16" in self.extensions and self.arch == "x86-64":
            return "bf16"
        if "fp16" in self.extensions and self.arch == "arm64":
            return "f16"
        return None


def known_isa(value: str | None) -> str | None:
    """A pydantic validator for an optional ISA name: refuses names :func:`parse_isa` refuses.

    Reused by every technique config with an ``isa`` field
    (``_known_isa = field_validator("isa")(known_isa)``).
    """
    if value:
        parse_isa(value)
    return value


def parse_isa(name: str) -> Isa:
    """Parse an ISA name (``x86-64-avx2``, ``arm64-dotprod``, ``host``...).

    Args:
        name: The name; ``host`` detects the CPU this code runs on.

    Returns:
        The ISA.

    Raises:
        ConfigError: An unknown architecture or extension.
    """
    text = name.strip().lower()
    if text == "host":
        return detect_isa()
    for arch, known in EXTENSIONS.items():
        if text == arch or text.startswith(arch + "-"):
            exts = [e for e in text[len(arch) :].split("-") if e]
            bad = [e for e in exts if e not in known]
            if bad:
                raise ConfigError(
                    f"ISA {name!r}: unknown extension(s) {bad} for {arch}; expected some of "
                    f"{list(known)}"
                )
            return Isa(arch, frozenset(exts))
    raise ConfigError(
        f"ISA {name!r}: expected 'host' or an architecture ({', '.join(EXTENSIONS)}) followed "
        "by its extensions, e.g. x86-64-avx2, x86-64-avx512-vnni, arm64-dotprod"
    )


def isa_from_cpuinfo(text: str, machine: str) -> Isa:
    """The ISA described by a ``/proc/cpuinfo`` text on a machine (``platform.machine()``).

    Args:
        text: The content of ``/proc/cpuinfo`` ("" when unreadable).
        machine: ``x86_64``, ``AMD64``, ``aarch64``, ``arm64``...

    Returns:
        The ISA with the extensions the first CPU lists.

    Raises:
        ConfigError: A machine kfedge has no ISA name for.
    """
    arch = _MACHINES.get(machine.lower())
    if arch is None:
        raise ConfigError(
            f"unknown CPU architecture {machine!r}; expected one of {list(_MACHINES)}"
        )
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags = set(value.split())
            break
    exts = {_FLAGS[f] for f in flags if f in _FLAGS} & set(EXTENSIONS[arch])
    return Isa(arch, frozenset(exts))


def detect_isa() -> Isa:
    """The ISA of the CPU this code runs on (from ``/proc/cpuinfo``; no extensions elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    return isa_from_cpuinfo(text, platform.machine())


def target_isa(target: object) -> Isa:
    """The ISA a target profile runs: its ``isa`` when stated, else its ``arch`` alone."""
    stated = getattr(target, "isa", None)
    if stated:
        return parse_isa(stated)
    return Isa("arm64" if getattr(target, "arch", "amd64") == "arm64" else "x86-64")


@dataclass(frozen=True)
class OrtInt8Settings:
    """How ONNX Runtime INT8 weights are quantized for an ISA.

    Attributes:
        reduce_range: Quantize weights to 7 bits (ONNX Runtime's ``reduce_range``).
        isa: The ISA name the choice assumed.
        reason: One sentence for the candidate record and the report.
    """

    reduce_range: bool
    isa: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form for ``candidate.json``."""
        return {"reduce_range": self.reduce_range, "isa": self.isa, "reason": self.reason}


def ort_int8_settings(isa: Isa | None, weight_type: str = "int8") -> OrtInt8Settings:
    """The ``reduce_range`` setting that keeps ONNX Runtime INT8 accurate on ``isa``.

    Args:
        isa: Where the model will run; None means some x86-64 CPU, extensions unknown.
        weight_type: ``int8`` or ``uint8`` weights (activations are uint8 on x86 either way).

    Returns:
        The setting and why.
    """
    isa = isa or Isa("x86-64")
    if weight_type == "uint8":
        return OrtInt8Settings(False, isa.name, "uint8 weights (U8U8): no int16 saturation")
    if isa.arch != "x86-64":
        return OrtInt8Settings(
            False, isa.name, f"{isa.arch} int8 kernels accumulate without int16 saturation"
        )
    if isa.vnni:
        return OrtInt8Settings(False, isa.name, "VNNI accumulates u8 x s8 products in int32")
    unknown = "" if isa.extensions else " (VNNI not known to be present)"
    return OrtInt8Settings(
        True,
        isa.name,
        f"{isa.name}{unknown}: U8S8 runs with VPMADDUBSW, whose int16 pair sums saturate; "
        "7-bit weights (reduce_range) avoid it",
    )


def usable_cpus() -> tuple[int, str]:
    """How many CPUs this process may really use, and how that was decided.

    The smallest of: the CPU affinity mask, the cgroup v2 quota (``cpu.max``) or v1 quota
    (``cpu.cfs_quota_us / cpu.cfs_period_us``), rounded down (at least 1).

    Returns:
        ``(cpus, source)`` where source names the limiting rule.
    """
    best, source = os.cpu_count() or 1, "os.cpu_count"
    try:
        aff = len(os.sched_getaffinity(0))
        if aff < best:
            best, source = aff, "affinity"
    except (AttributeError, OSError):
        pass
    quota = _cgroup_quota()
    if quota is not None and quota < best:
        best, source = quota, "cgroup cpu quota"
    return max(1, best), source


def _cgroup_quota() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return max(1, int(int(text[0]) / int(text[1])))
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return max(1, q // p) if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None
