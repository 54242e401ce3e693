"""Markdown of the container-image section: sizes and the serving image's time to ready.

Renders what :func:`benchmarks.images.measure` returned; every figure comes from it.
"""

from __future__ import annotations

from typing import Any

#: The section's title in BENCHMARKS.md.
TITLE = "11. Container images: size, compressed size, time to ready"

#: The goal the edge sets for the smallest serving image (issue: LiteRT-only image).
LITERT_GOAL_MB = 300


def render_images(data: dict[str, Any]) -> str:
    """The section's Markdown.

    Args:
        data: What :func:`benchmarks.images.measure` returned.

    Returns:
        Markdown text (ends with a newline).
    """
    lines = [
        f"## {TITLE}",
        "",
        f"Built by `make images` ({data.get('engine', 'Docker')}, legacy builder, the local "
        "Debian 12 base). Size: the engine's image size; compressed: `docker save` through "
        "gzip level 6, about what a registry stores and a device pulls.",
        "",
        "| Image | Size | Compressed | TensorFlow | Base |",
        "|---|---|---|---|---|",
    ]
    for name, img in data.get("images", {}).items():
        lines.append(
            f"| {name} (`{img['ref']}`) | {img['size_bytes'] / 1e6:.0f} MB "
            f"| {img['gzip_bytes'] / 1e6:.0f} MB | {'yes' if img['tensorflow'] else 'no'} "
            f"| `{img.get('base') or '?'}` |"
        )
    base = data.get("base")
    if base:
        lines += ["", f"The base alone (`{base['ref']}`) is {base['size_bytes'] / 1e6:.0f} MB."]
    serving = data.get("images", {}).get("serving")
    if serving:
        mb = serving["size_bytes"] / 1e6
        verdict = "meets" if mb <= LITERT_GOAL_MB else f"misses by {mb - LITERT_GOAL_MB:.0f} MB"
        lines += [
            "",
            f"Goal for a LiteRT-only serving image: ≤ {LITERT_GOAL_MB} MB. There is no "
            f"per-runtime image yet; the one serving image ({mb:.0f} MB, every runtime) "
            f"{verdict}.",
        ]
    ready = data.get("ready", {})
    if ready:
        lines += [
            "",
            "Time from `docker run` to `/v2/health/ready` = 200, the serving image run as the "
            "ClusterServingRuntime runs it (read-only root, uid 10001, no capabilities, model "
            "read-only at `/mnt/models`), sample model:",
            "",
            "| Model format | Median | Starts |",
            "|---|---|---|",
        ]
        for fmt, r in ready.items():
            runs = ", ".join(f"{s:.2f}" for s in r["runs_s"])
            lines.append(f"| {fmt} | {r['median_s']:.2f} s | {runs} |")
    lines.append("")
    return "\n".join(lines)
