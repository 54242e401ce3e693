"""docs/ARCHITECTURE.md: every reference to it in the code points at a section that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
CODE_DIRS = ("src", "serving", "components", "pipelines", "benchmarks", "images", "manifests")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def test_anchor_rule_matches_github() -> None:
    assert _anchors("## Data flow\n### Images and manifests\n# kfedge architecture") == {
        "data-flow",
        "images-and-manifests",
        "kfedge-architecture",
    }


def test_every_architecture_reference_resolves() -> None:
    anchors = _anchors(DOC.read_text())
    refs: list[tuple[Path, str]] = []
    for folder in CODE_DIRS:
        for f in (ROOT / folder).rglob("*"):
            if (
                f.is_file()
                and f.suffix in (".py", ".yaml", ".md", "")
                and "ARCHITECTURE" in (text := f.read_text(errors="ignore"))
            ):
                refs += [(f, a) for a in re.findall(r"ARCHITECTURE\.md#([\w\-]+)", text)]
                assert "ARCHITECTURE.md §" not in text, f"{f}: points at a numbered section"
    assert refs, "the code is expected to point into docs/ARCHITECTURE.md"
    broken = [f"{f.relative_to(ROOT)}: #{a}" for f, a in refs if a not in anchors]
    assert not broken, f"references to missing sections of docs/ARCHITECTURE.md: {broken}"


def test_the_sections_the_code_relies_on_exist() -> None:
    anchors = _anchors(DOC.read_text())
    for section in ("layers", "data-flow", "contracts", "techniques", "measuring", "selection"):
        assert section in anchors, section
    for section in ("pipelines", "components", "serving", "errors"):
        assert section in anchors, section
