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
        "| Image | Serves | Size | Compressed | TensorFlow | Base |",
        "|---|---|---|---|---|---|",
    ]
    images = data.get("images", {})
    for name, img in images.items():
        serves = ", ".join(img.get("formats") or []) or "(pipeline steps)"
        lines.append(
            f"| {name} (`{img['ref']}`) | {serves} | {img['size_bytes'] / 1e6:.0f} MB "
            f"| {img['gzip_bytes'] / 1e6:.0f} MB | {'yes' if img['tensorflow'] else 'no'} "
            f"| `{img.get('base') or '?'}` |"
        )
    base = data.get("base")
    if base:
        lines += ["", f"The base alone (`{base['ref']}`) is {base['size_bytes'] / 1e6:.0f} MB."]
    litert = next((i for i in images.values() if i.get("formats") == ["tflite"]), None)
    if litert:
        mb = litert["size_bytes"] / 1e6
        verdict = "meets it" if mb <= LITERT_GOAL_MB else f"misses by {mb - LITERT_GOAL_MB:.0f} MB"
        lines += [
            "",
            f"Goal for the LiteRT-only serving image: ≤ {LITERT_GOAL_MB} MB. "
            f"`{litert['ref']}` is {mb:.0f} MB ({litert['gzip_bytes'] / 1e6:.0f} MB compressed): "
            f"{verdict}.",
        ]
    for img in images.values():
        if img.get("largest_packages"):
            top = ", ".join(f"{p['name']} {p['mb']:.0f}" for p in img["largest_packages"])
            lines.append(f"- largest in `{img['ref']}` (MB): {top}")
    ready = data.get("ready", {})
    if ready:
        lines += [
            "",
            "Time from `docker run` to `/v2/health/ready` = 200, each image run as its "
            "ClusterServingRuntime runs it (read-only root, uid 10001, no capabilities, model "
            "read-only at `/mnt/models`), sample model; the two images' starts interleaved:",
            "",
            "| Model format | Every-runtime image: median | One-runtime image | Median | Starts "
            "(every-runtime / one-runtime) |",
            "|---|---|---|---|---|",
        ]
        for fmt, r in ready.items():
            if "runs_s" in r:  # results of an earlier layout: the every-runtime image only
                r = {"serving": r}
            full, one = r["serving"], r.get("one")
            runs = ", ".join(f"{s:.2f}" for s in full["runs_s"])
            if one:
                runs += " / " + ", ".join(f"{s:.2f}" for s in one["runs_s"])
                cells = f"`{one['ref'].rsplit('/', 1)[-1]}` | {one['median_s']:.2f} s"
            else:
                cells = "- | -"
            lines.append(f"| {fmt} | {full['median_s']:.2f} s | {cells} | {runs} |")
    lines.append("")
    return "\n".join(lines)
