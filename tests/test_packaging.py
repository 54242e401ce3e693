"""The wheel holds every package folder and every module imports from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "src/kfedge": "kfedge",
    "components": "kfedge/components",
    "pipelines": "kfedge/pipelines",
    "serving": "kfedge/serving",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("kfedge-*.whl")
    return whl


def _source_modules() -> set[str]:
    found = set()
    for folder, pkg in FOLDERS.items():
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            found.add("/".join([pkg, *rel.parts]) + ".py")
    return found


def test_every_source_module_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(m for m in _source_modules() if m not in names)
    assert not missing, f"modules missing from the wheel (add the folder to pyproject): {missing}"


def test_package_data_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pkg in [
        ("src/kfedge/targets", "kfedge/targets"),
        ("components", "kfedge/components"),
        ("pipelines", "kfedge/pipelines"),
    ]:
        for y in (ROOT / folder).glob("*.yaml"):
            assert f"{pkg}/{y.name}" in names, f"{y} is not shipped in the wheel"
    assert any(n.startswith("kfedge/targets/") and n.endswith(".yaml") for n in names)


def test_every_module_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    mods = sorted(
        m[: -len(".py")].replace("/", ".").removesuffix(".__init__") for m in _source_modules()
    )
    code = (
        "import importlib, sys, kfedge\n"
        f"assert kfedge.__file__.startswith({str(target)!r}), kfedge.__file__\n"
        f"for m in {mods!r}:\n"
        "    if m.endswith('__main__'):\n"
        "        continue\n"
        "    importlib.import_module(m)\n"
        "print('ok', len(sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("ok")


def test_library_has_no_module_level_kfp_or_tensorflow_import() -> None:
    code = (
        "import importlib, pkgutil, sys, kfedge\n"
        "for m in pkgutil.walk_packages(kfedge.__path__, 'kfedge.'):\n"
        "    if m.name.split('.')[1] in ('components', 'pipelines', 'serving'):\n"
        "        continue\n"
        "    if m.name.endswith('__main__'):\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
        "bad = [k for k in ('kfp', 'tensorflow', 'tf_keras', 'onnxruntime') if k in sys.modules]\n"
        "print(bad)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", f"heavy/kfp modules imported at module level: {res.stdout}"
