"""Markdown of the CPU-class section: INT8 sample accuracy of every format per CPU class.

Renders what :func:`benchmarks.cpuclasses.measure` returned; every figure comes from it.
"""

from __future__ import annotations

from typing import Any


def _isa(entry: dict[str, Any]) -> str:
    facts = entry.get("facts") or {}
    isa = facts.get("kfedge_isa", "")
    if facts.get("machine") == "aarch64":
        dot = "int8 dot product" if facts.get("dotprod") else "no int8 dot product"
        return f"{isa}; MIDR part {facts.get('cpu_part', '?')}, {dot}"
    if facts.get("machine") == "x86_64":
        vnni = "VNNI" if facts.get("vnni") else "no VNNI"
        avx512 = "AVX-512" if facts.get("avx512f") else "no AVX-512"
        return f"{isa}; CPUID: {avx512}, {vnni}"
    return isa


def _cell(res: dict[str, Any] | None) -> str:
    if not res:
        return "—"
    if "error" in res:
        return "failed"
    text = f"{100 * res['accuracy']:.2f} %"
    delta = res.get("delta_vs_host_points")
    if delta:
        text += f" ({delta:+.2f})"
    return text


#: The section's title in BENCHMARKS.md.
TITLE = "10. INT8 accuracy per CPU class (emulated CPUs: accuracy, no latency)"


def render_cpu_classes(data: dict[str, Any]) -> str:
    """The section's Markdown: the accuracy table, the CPU facts, what emulation cannot say.

    Args:
        data: What :func:`benchmarks.cpuclasses.measure` returned.

    Returns:
        Markdown text (ends with a newline).
    """
    formats = {key: c.get("label", key) for key, c in data.get("candidates", {}).items()}
    classes = data.get("classes", {})
    lines = [
        f"## {TITLE}",
        "",
        "Each INT8 candidate is made once on the host, then scored on the sample's eval split "
        "by `python -m kfedge.evaluate` on every CPU class; the non-host classes run under "
        "qemu-user, which executes that class's instructions (accuracy is real) at no "
        "representative speed. In brackets: the difference from the host, in points.",
        "",
    ]
    header = ["CPU class", "ISA", *formats.values()]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: list[str] = []
    for entry in classes.values():
        if "unavailable" in entry:
            row = [entry["label"], "not measured"] + ["—"] * len(formats)
            notes.append(f"{entry['label']}: not measured ({entry['unavailable']}).")
        else:
            results = entry.get("results", {})
            row = [entry["label"], _isa(entry)] + [_cell(results.get(fmt)) for fmt in formats]
            for fmt in formats:
                err = (results.get(fmt) or {}).get("error")
                if err:
                    first = err.strip().splitlines()[-1] if err.strip() else "?"
                    notes.append(f"{entry['label']}, {formats[fmt]}: {first}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    samples = {
        res.get("num_samples")
        for entry in classes.values()
        for res in entry.get("results", {}).values()
        if res.get("num_samples")
    }
    if samples:
        lines.append(f"Samples scored: {', '.join(str(n) for n in sorted(samples))}.")
    note = data.get("latency", "")
    if note:
        lines.append(f"{note[:1].upper()}{note[1:]}.")
    land = data.get("userland")
    if land:
        wheels = ", ".join(f"{k} {v}" for k, v in land.get("wheels", {}).items())
        lines.append(
            f"arm64 userland: Debian {land.get('debian', '?')} Python 3.11 with {wheels} "
            f"(built in {land.get('build_s', {}).get('total', '?')} s)."
        )
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"
