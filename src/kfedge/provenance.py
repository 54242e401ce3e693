"""Where a latency figure comes from: the target's CPU, or another machine's.

``kfedge run --target cpu-arm64`` on an x86 laptop, or a pipeline whose benchmark pod landed on
a node of another CPU class, measures latency on a machine that is not the target's. Accuracy
of FP32 models carries over; latency does not, and INT8 speed and accuracy depend on the CPU's
instructions (VNNI, dot product, BF16). The report says so at the top, beside every latency and
in the selection, from the record built here.
"""

from __future__ import annotations

from typing import Any

from kfedge.compare import node_isa
from kfedge.errors import KfedgeError

#: The mark put beside every latency figure that was not measured on the target's CPU.
MARK = "‡"


def _target(target: Any) -> Any | None:
    if target is None or hasattr(target, "arch"):
        return target
    from kfedge.targets import load_target

    try:
        return load_target(str(target))
    except (KfedgeError, OSError, ValueError):
        return None


def same_class(want: Any, got: Any) -> bool:
    """Whether a machine of ISA ``got`` times like the nodes of ISA ``want``.

    The same architecture, every extension the target states present, and the same int8
    dot-product instructions (VNNI / AMX, dotprod, i8mm).
    """
    if want.arch != got.arch or not want.extensions <= got.extensions:
        return False
    dot = {"dotprod", "i8mm"}
    return want.vnni == got.vnni and (want.extensions & dot) == (got.extensions & dot)


def provenance(target: Any, machine: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the latency was measured on the target's CPU, and a sentence that says so.

    Args:
        target: The target profile (a :class:`~kfedge.targets.Target` or its name), or None.
        machine: The measuring machine (side-by-side ``machine``: ``machine``, ``cpu``, ``isa``
            flags; or an evaluation's ``arch``, ``cpu``), or None. Its ``off_target`` (a
            sentence) says the run measured every target on one machine (a kfp.local fleet):
            then nothing is on the target, whatever the CPU.

    Returns:
        ``on_target`` (True, False, or None when either side is unknown), ``target``,
        ``target_arch``, ``target_isa`` (None when the profile states none), ``measured_arch``,
        ``measured_isa``, ``measured_cpu`` and ``note`` ("" on the target).
    """
    from kfedge.cpu import parse_isa, target_isa

    prof = _target(target)
    got = node_isa(machine)
    out: dict[str, Any] = {
        "target": getattr(prof, "name", target if isinstance(target, str) else None),
        "target_arch": getattr(prof, "arch", None),
        "target_isa": getattr(prof, "isa", None),
        "measured_arch": got.arch if got else None,
        "measured_isa": got.name if got else None,
        "measured_cpu": str((machine or {}).get("cpu") or ""),
        "on_target": None,
        "note": "",
    }
    if prof is None or got is None:
        return out
    want = target_isa(prof)
    where = f"{got.name}{' (' + out['measured_cpu'] + ')' if out['measured_cpu'] else ''}"
    if (machine or {}).get("off_target"):  # the run says so itself (kfp.local fleet runs)
        out["on_target"] = False
        out["note"] = (
            f"Not measured on the target's hardware: {machine['off_target']} (measured on "
            f"{where}, for target {prof.name}, {want.arch})."
        )
    elif want.arch != got.arch:
        out["on_target"] = False
        out["note"] = (
            f"Not measured on the target's hardware: latency was measured on {where}, the "
            f"target {prof.name} is {want.arch}. Latency and the choice by latency are this "
            "machine's, not the target's; run the benchmark on a node of the target."
        )
    elif prof.isa and "isa" not in (machine or {}):
        pass  # the record lists no ISA flags (an evaluation's): the CPU class is unknown
    elif prof.isa and not same_class(parse_isa(prof.isa), got):
        out["on_target"] = False
        out["note"] = (
            f"Not measured on the target's CPU class: latency was measured on {where}, the "
            f"target {prof.name} states {prof.isa}. INT8 and reduced-precision speed depend "
            "on those instructions: the choice by latency is this machine's."
        )
    else:
        out["on_target"] = True
    return out


def selection_caveat(rep: dict[str, Any]) -> str:
    """The sentence the report's selection carries when latency was not the target's ("")."""
    where = rep.get("provenance") or {}
    if where.get("on_target") is not False:
        return ""
    return (
        f"The latency this choice weighs was measured on {where.get('measured_isa')}, not on "
        f"the target {where.get('target')}'s CPU: the choice by latency is not the target's."
    )
