"""Adding a technique is adding one file: a new module is discovered, registered, planned by
provision where the target runs its output, grouped in the report by its declaration, and its
candidate is evaluated like any other."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kfedge import techniques
from kfedge.errors import ConfigError

PLUGIN = '''"""``fp32-copy``: the FP32 TFLite model, copied as it is."""

import shutil

from kfedge.errors import ModelFormatError
from kfedge.formats import detect_format
from kfedge.techniques import Technique


class Fp32Copy(Technique):
    """Copy an FP32 TFLite model unchanged."""

    name = "fp32-copy"
    output_format = "tflite"
    quant_mode = "fp32"

    def check(self, src, data, cfg):
        if detect_format(src.path) != "tflite":
            raise ModelFormatError(f"fp32-copy copies a .tflite model, got {src.path}")

    def transform(self, src, data, cfg, work):
        shutil.copyfile(src.path, work / self.model_file)
        return {"copied_from": src.path.name}
'''


@pytest.fixture
def plugin(tmp_path: Path):
    """A package holding only the new technique's file, discovered like the built-in ones."""
    pkg = tmp_path / "kfx_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "fp32_copy.py").write_text(PLUGIN)
    sys.path.insert(0, str(tmp_path))
    try:
        assert techniques.discover([str(pkg)], "kfx_plugins") == ["fp32_copy"]
        yield techniques.get_technique("fp32-copy")
    finally:
        techniques.TECHNIQUES.pop("fp32-copy", None)
        for mod in [m for m in sys.modules if m.startswith("kfx_plugins")]:
            del sys.modules[mod]
        sys.path.remove(str(tmp_path))


def test_a_new_technique_file_is_registered_planned_grouped_and_evaluated(
    plugin, fp32_tflite: Path, sample_dataset: Path, tmp_path: Path
):
    from kfedge.evaluate import evaluate
    from kfedge.provision import plan_techniques, technique_params
    from kfedge.targets import load_target

    # registered, with its declaration
    assert "fp32-copy" in techniques.list_techniques()
    info = {d["name"]: d for d in techniques.describe()}["fp32-copy"]
    assert (info["output_format"], info["quant_mode"], info["group"]) == ("tflite", "fp32", None)
    assert info["description"] == "Copy an FP32 TFLite model unchanged."
    # planned where the target runs FP32 TFLite, refused where it does not
    cpu = load_target("cpu-amd64")
    assert plan_techniques(["fp32-copy"], cpu) == ["fp32-tflite", "fp32-copy"]
    assert technique_params("fp32-copy", cpu, epochs=3) == {}  # it does not fine-tune
    with pytest.raises(ConfigError, match=r"fp32-copy quantizes to fp32, the target runs"):
        plan_techniques(["fp32-copy"], load_target("coral-edgetpu"))
    # grouped by its declaration
    assert techniques.report_group("fp32-copy") is None
    assert techniques.report_group("fp32-copy>ptq-int8") == "PTQ"
    # applied through the one lifecycle, and evaluated
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        techniques.apply("fp32-copy", fp32_tflite, None, {"bits": 4}, tmp_path / "bad")
    cand = techniques.apply("fp32-copy", fp32_tflite, None, None, tmp_path / "copy")
    assert cand.technique == "fp32-copy" and cand.format == "tflite"
    assert cand.stats["copied_from"] == fp32_tflite.name
    assert cand.stats["weight_dtype_counts"] == {"float32": 10}  # the shared output stats
    assert (tmp_path / "copy" / "model.tflite").read_bytes() == fp32_tflite.read_bytes()
    ev = evaluate(tmp_path / "copy", sample_dataset, latency_runs=5, warmup=1, isolate=False)
    accuracy = ev["accuracy"] if isinstance(ev, dict) else ev.accuracy
    assert accuracy >= 0.9
