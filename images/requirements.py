"""Print the requirements of kfedge's extras, one per line, from pyproject.toml (no build needed).

The images install the dependencies in a layer of their own, from ``pyproject.toml`` and the
lock alone, so a change to kfedge's sources rebuilds only the small layer that installs kfedge.
Usage: ``python requirements.py EXTRA [EXTRA ...]`` (``kfedge[x]`` self-references are followed).
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(project: dict, extras: list[str]) -> list[str]:
    """The base dependencies and those of ``extras``, self-references expanded, deduplicated."""
    optional = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"no extra {extra!r} in pyproject.toml; known: {sorted(optional)}")
        seen.add(extra)
        for req in optional[extra]:
            self_ref = re.fullmatch(r"kfedge\[([\w,\s-]+)\]", req.strip())
            if self_ref:
                todo += [e.strip() for e in self_ref.group(1).split(",")]
            else:
                out.append(req)
    return list(dict.fromkeys(out))


if __name__ == "__main__":
    with open("pyproject.toml", "rb") as fh:
        print("\n".join(requirements(tomllib.load(fh)["project"], sys.argv[1:])))
