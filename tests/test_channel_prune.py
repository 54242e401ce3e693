"""``channel-prune``: a physically smaller dense model, fine-tuned, chained, searched.

Candidates are built once per module on the sample baseline (MobileNet-style, 32x32x1 digits)
with few epochs; the properties checked are the technique's promises: fewer filters / units
(the rounding rules), fewer params and MACs, a smaller deployable TFLite that runs, a Keras
model later techniques chain from, the ``auto`` search's bisection and record, and refusals
before any heavy work.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kfedge import techniques
from kfedge.candidate import load_candidate
from kfedge.errors import ConfigError, ModelFormatError
from kfedge.techniques import channel_prune as cp

# -- helpers ---------------------------------------------------------------------------------


def _accuracy(path: Path, data: Path) -> float:
    from kfedge.data import load_split
    from kfedge.runners import load_runner

    x, y = load_split(data, "eval")
    runner = load_runner(path, threads=2)
    return float(np.mean(np.argmax(runner.predict(x), axis=1) == y))


def _keras(cand_dir: Path) -> Any:
    from kfedge.models import load_keras

    cand = load_candidate(cand_dir)
    assert cand.keras_file == "keras/model.keras"
    return load_keras(cand_dir / cand.keras_file)


def _widths(model: Any) -> dict[str, int]:
    return {
        layer.name: int(layer.get_config().get("filters") or layer.get_config()["units"])
        for layer in model.layers
        if type(layer).__name__ in ("Conv2D", "Dense")
    }


def _refused(exc_type: type, match: str, model: Path, data: Path | None, params: Any, out: Path):
    t0 = time.perf_counter()
    with pytest.raises(exc_type, match=match):
        techniques.apply("channel-prune", model, data, params, out)
    assert time.perf_counter() - t0 < 10.0, "refusal must come before any fine-tuning"
    assert not (out / "candidate.json").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("channel_prune")


@pytest.fixture(scope="module")
def baseline_acc(baseline_model: Path, sample_dataset: Path) -> float:
    return _accuracy(baseline_model, sample_dataset)


@pytest.fixture(scope="module")
def built(baseline_model: Path, sample_dataset: Path, work: Path):
    """Build candidates lazily, each once per module: built(key) -> (dir, Candidate)."""
    specs: dict[str, tuple[str, Any, dict[str, Any]]] = {
        "cp50": ("channel-prune", baseline_model, {"epochs": 4}),
        "cp25-bn-int8": (
            "channel-prune",
            baseline_model,
            {"ratio": 0.25, "criterion": "bn_gamma", "quantize": "int8", "epochs": 1},
        ),
        "auto": ("channel-prune", baseline_model, {"ratio": "auto", "epochs": 2}),
        "base-int8": ("ptq-int8", baseline_model, {}),
    }
    cache: dict[str, tuple[Path, Any]] = {}

    def get(key: str):
        if key not in cache:
            if key == "cp50>ptq-int8":
                name, model, params = "ptq-int8", get("cp50")[0], {}
            else:
                name, model, params = specs[key]
            out = work / key
            cache[key] = (out, techniques.apply(name, model, sample_dataset, params, out))
        return cache[key]

    return get


# -- declaration -----------------------------------------------------------------------------


def test_declared():
    decl = techniques.get_technique("channel-prune")
    assert "channel-prune" in techniques.list_techniques()
    assert decl.output == ("tflite", "fp32") and decl.fine_tunes and decl.needs_data
    assert decl.family is None and decl.group is None
    info = {d["name"]: d for d in techniques.describe()}["channel-prune"]
    props = info["params"]["properties"]
    assert {"ratio", "criterion", "min_channels", "round_to", "max_accuracy_drop"} <= set(props)
    assert {"epochs", "learning_rate", "quantize", "io_dtype"} <= set(props)
    cfg = techniques.validate_config("channel-prune", {})
    assert (cfg.ratio, cfg.criterion, cfg.min_channels, cfg.round_to) == (0.5, "l1", 8, 8)
    assert techniques.validate_config("channel-prune", {"ratio": "auto"}).auto
    assert techniques.report_group("channel-prune") is None
    assert techniques.report_group("channel-prune>ptq-int8") == "PTQ"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"ratio": 1.0}, r"ratio must be 'auto' or a number in \(0, 1\)"),
        ({"ratio": 0}, r"ratio must be 'auto' or a number in \(0, 1\)"),
        ({"ratio": "half"}, r"ratio must be 'auto' or a number in \(0, 1\).*got 'half'"),
        ({"ratio": True}, r"ratio must be 'auto' or a number"),
        ({"criterion": "l2"}, r"criterion: Input should be 'l1' or 'bn_gamma'"),
        ({"min_channels": 0}, r"min_channels: .*greater than or equal to 1"),
        ({"round_to": 0}, r"round_to: .*greater than or equal to 1"),
        ({"epochs": 0}, r"epochs: .*greater than or equal to 1"),
        ({"max_accuracy_drop": 0.02}, r"max_accuracy_drop applies only with ratio 'auto'"),
        ({"ratio": 0.3, "search_ratios": [0.2]}, r"search_ratios applies only with ratio 'auto'"),
        ({"ratio": "auto", "search_ratios": []}, r"search_ratios must be a non-empty list"),
        ({"ratio": "auto", "search_ratios": [0.5, 1.5]}, r"search_ratios: 1\.5 is not a number"),
        ({"ratio": "auto", "search_ratios": [0.5, 0.5]}, r"search_ratios must be distinct"),
        ({"ratio": "auto", "search_ratios": [0.1] * 9}, r"at most 8 ratios"),
        ({"ratio": "auto", "max_accuracy_drop": -0.1}, r"max_accuracy_drop: .*greater than"),
        ({"io_dtype": "int8"}, r"io_dtype int8/uint8 needs quantize: int8"),
        ({"sparsity": 0.5}, r"sparsity: Extra inputs.*Accepted parameters:.*ratio"),
    ],
)
def test_bad_params(params: dict[str, Any], match: str):
    with pytest.raises(ConfigError, match=match):
        techniques.validate_config("channel-prune", params)


def test_refusals_before_fine_tuning(baseline_model, sample_dataset, fp32_tflite, tmp_path):
    from kfedge import compat
    from kfedge.models import save_keras

    _refused(
        ConfigError, r"ratio must be", baseline_model, sample_dataset, {"ratio": 2}, tmp_path / "a"
    )
    _refused(ConfigError, r"needs a split dataset", baseline_model, None, {}, tmp_path / "b")
    _refused(ModelFormatError, r"tf_keras model", fp32_tflite, sample_dataset, {}, tmp_path / "c")
    _refused(
        ConfigError,
        r"skip_layers \['nope'\] are not layers of the model",
        baseline_model,
        sample_dataset,
        {"skip_layers": ["nope"]},
        tmp_path / "d",
    )
    # 0.05 removes nothing: every count rounds back up to a multiple of 8
    _refused(
        ConfigError,
        r"ratio 0\.05 removes no channel.*round_to=8",
        baseline_model,
        sample_dataset,
        {"ratio": 0.05},
        tmp_path / "e",
    )
    # the auto search needs the calibration split
    partial = tmp_path / "ds"
    partial.mkdir()
    for f in ("dataset.json", "train.npz", "eval.npz"):
        (partial / f).write_bytes((sample_dataset / f).read_bytes())
    _refused(
        Exception,
        r"no calibration split",
        baseline_model,
        partial,
        {"ratio": "auto"},
        tmp_path / "f",
    )
    # nothing to prune: the only producer is the softmax head
    keras = compat.keras()
    inp = keras.Input((32, 32, 1))
    head = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inp))
    tiny = save_keras(keras.Model(inp, head), tmp_path / "tiny.keras")
    _refused(
        ModelFormatError,
        r"no channel group that can be pruned",
        tiny,
        sample_dataset,
        {},
        tmp_path / "g",
    )


# -- a fixed ratio ---------------------------------------------------------------------------


def test_fixed_ratio_is_physically_smaller(
    built, baseline_model, sample_dataset, baseline_acc, fp32_tflite
):
    from kfedge.models import load_keras
    from kfedge.techniques._channels import count_macs

    out, cand = built("cp50")
    assert cand.name == "channel-prune-50" and cand.technique == "channel-prune"
    assert cand.parent == "baseline" and cand.params["ratio"] == 0.5
    base, model = load_keras(baseline_model), _keras(out)
    before, after = _widths(base), _widths(model)
    # half of each group, at least 8, the 10-class softmax head left whole
    assert after == {
        "stem_conv": 8,
        "b0_pw": 16,
        "b1_pw": 32,
        "b2_pw": 32,
        "b3_pw": 64,
        "probs": 10,
    }, after
    assert set(before) == set(after)
    s = cand.stats
    assert s["criterion"] == "l1" and s["ratio"] == 0.5
    assert s["kept_channels"] == {k: v for k, v in after.items() if k != "probs"}
    assert s["channel_groups"]["b3_pw"] == {"kept": 64, "total": 128}
    assert s["params_before"] == base.count_params() and s["params_after"] == model.count_params()
    assert s["params_after"] < 0.4 * s["params_before"]
    assert s["macs_before"] == count_macs(base) and s["macs_after"] == count_macs(model)
    assert s["macs_after"] < 0.4 * s["macs_before"]
    assert s["channels_before"] == 304 and s["channels_after"] == 152
    assert list(s["unprunable_groups"]) == ["probs"]
    assert s["fine_tune_seconds"] > 0 and s["fine_tune_steps"] > 0
    # dense kernels, no zeros to rely on; a smaller deployable that still classifies
    assert s["stored_weight_sparsity"] < 0.05
    tfl = out / "model.tflite"
    assert tfl.stat().st_size < 0.5 * fp32_tflite.stat().st_size
    acc = _accuracy(tfl, sample_dataset)
    assert acc >= baseline_acc - 0.1, (baseline_acc, acc)
    meta = cand.kfp_metadata()
    assert meta["params_after"] == s["params_after"] and meta["macs_ratio"] == s["macs_ratio"]


def test_chains_into_ptq_int8(built, sample_dataset):
    pdir, pcand = built("cp50")
    out, cand = built("cp50>ptq-int8")
    assert cand.technique == "channel-prune>ptq-int8"
    assert cand.parent == pcand.name and cand.name == "channel-prune-50-ptq-int8"
    assert set(cand.stats["weight_dtype_counts"]) == {"int8"}
    size = (out / "model.tflite").stat().st_size
    base_out, _ = built("base-int8")
    assert size < 0.6 * (base_out / "model.tflite").stat().st_size
    assert size < (pdir / "model.tflite").stat().st_size
    fp32 = _accuracy(pdir / "model.tflite", sample_dataset)
    int8 = _accuracy(out / "model.tflite", sample_dataset)
    assert int8 >= fp32 - 0.05, (fp32, int8)


def test_bn_gamma_with_int8_export(built, sample_dataset):
    out, cand = built("cp25-bn-int8")
    assert cand.name == "channel-prune-25-int8" and cand.technique == "channel-prune>ptq-int8"
    s = cand.stats
    assert s["criterion"] == "bn_gamma" and s["criterion_fallback"] == {}
    # 25 %: 16 -> 12, rounded back to 16 (kept whole); 32 -> 24; 64 -> 48; 128 -> 96
    assert s["kept_channels"] == {
        "stem_conv": 16,
        "b0_pw": 24,
        "b1_pw": 48,
        "b2_pw": 48,
        "b3_pw": 96,
    }
    assert set(s["weight_dtype_counts"]) == {"int8"} and s["calibration_samples"] > 0
    assert _accuracy(out / "model.tflite", sample_dataset) > 0.5


def test_bn_gamma_keeps_the_largest_gammas(baseline_model):
    from kfedge.models import load_keras

    base = load_keras(baseline_model)
    cfg = techniques.validate_config("channel-prune", {"criterion": "bn_gamma"})
    new, stats = cp._prune(base, 0.5, cfg)

    def top(bn: str, n: int) -> np.ndarray:
        gamma = np.abs(base.get_layer(bn).get_weights()[0])
        return np.sort(np.argsort(gamma, kind="stable")[-n:])

    # b1_pw keeps the rows of b0's 16 best channels and the columns of its own 32 best
    rows, cols = top("b0_pw_bn", 16), top("b1_pw_bn", 32)
    want = base.get_layer("b1_pw").get_weights()[0][:, :, rows, :][..., cols]
    np.testing.assert_array_equal(new.get_layer("b1_pw").get_weights()[0], want)
    gamma = new.get_layer("b1_pw_bn").get_weights()[0]
    np.testing.assert_array_equal(gamma, base.get_layer("b1_pw_bn").get_weights()[0][cols])
    assert stats["criterion"] == "bn_gamma" and stats["criterion_fallback"] == {}


# -- the auto search -------------------------------------------------------------------------


def test_auto_search_records_and_keeps_its_choice(built):
    out, cand = built("auto")
    assert cand.name == "channel-prune-auto" and cand.params["ratio"] == "auto"
    s = cand.stats
    search = s["search"]
    trials = search["trials"]
    assert search["ratios"] == [0.25, 0.5, 0.75] and search["split"] == "calibration"
    assert search["max_fine_tunes"] == 2 and 1 <= len(trials) <= 2 == s["search_fine_tunes"]
    # bisection: the middle first, then up when within the bound, down when not
    assert trials[0]["ratio"] == 0.5
    assert trials[1]["ratio"] == (0.75 if trials[0]["within_bound"] else 0.25)
    for t in trials:
        assert 0 <= t["accuracy"] <= 1 and t["params_after"] > 0 and t["fine_tune_seconds"] > 0
        assert t["within_bound"] == (t["accuracy_drop"] <= search["bound"] + 1e-9)
        assert math.isclose(
            t["accuracy_drop"], search["baseline_accuracy"] - t["accuracy"], abs_tol=2e-4
        )
    within = [t for t in trials if t["within_bound"]]
    if within:
        chosen = max(within, key=lambda t: t["ratio"])
    else:
        chosen = max(trials, key=lambda t: (t["accuracy"], -t["ratio"]))
    assert search["within_bound"] == bool(within)
    assert search["chosen_ratio"] == s["ratio"] == chosen["ratio"]
    assert s["validation_accuracy"] == chosen["accuracy"]
    assert s["params_after"] == chosen["params_after"] == _keras(out).count_params()
    assert search["bound"] >= search["max_accuracy_drop"] == 0.01
    assert 0 < search["fine_tune_seconds"] <= search["seconds"] == s["search_seconds"]
    assert s["search_seconds"] <= s["seconds"]


def _small_cnn() -> Any:
    from kfedge import compat

    keras = compat.keras()
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 3, padding="same")(inp)))
    x = L.GlobalAveragePooling2D()(L.Conv2D(64, 3, padding="same", activation="relu")(x))
    return keras.Model(inp, L.Dense(4, activation="softmax")(x))


class _FakeSearch:
    """Stand-ins for fine-tuning and scoring: an accuracy per ratio, the tries recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, accuracy: dict[float, float]):
        self.accuracy = accuracy
        self.tried: list[float] = []
        self.last: float | None = None
        real = cp._prune

        def prune(model: Any, ratio: float, cfg: Any) -> Any:
            self.tried.append(ratio)
            self.last = ratio
            return real(model, ratio, cfg)

        def fine_tune(model: Any, data: Any, cfg: Any) -> dict[str, Any]:
            return {"fine_tune_seconds": 0.01, "fine_tune_steps": 1, "train_accuracy": 1.0}

        def split_accuracy(model: Any, data: Any, split: str = "calibration") -> tuple[float, int]:
            return (0.9 if self.last is None else self.accuracy[self.last]), 200

        monkeypatch.setattr(cp, "_prune", prune)
        monkeypatch.setattr(cp, "fine_tune", fine_tune)
        monkeypatch.setattr(cp, "split_accuracy", split_accuracy)


@pytest.mark.parametrize(
    ("ratios", "accuracy", "tried", "chosen", "within"),
    [
        # 0.5 within -> 0.75 too lossy: 0.5 kept
        ([0.25, 0.5, 0.75], {0.25: 0.9, 0.5: 0.895, 0.75: 0.7}, [0.5, 0.75], 0.5, True),
        # everything within: the largest
        ([0.25, 0.5, 0.75], {0.25: 0.9, 0.5: 0.9, 0.75: 0.9}, [0.5, 0.75], 0.75, True),
        # nothing within: the most accurate try (smallest ratio on ties), flagged
        ([0.25, 0.5, 0.75], {0.25: 0.85, 0.5: 0.8, 0.75: 0.5}, [0.5, 0.25], 0.25, False),
        # seven ratios: three fine-tunes at most
        (
            [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            {0.2: 0.9, 0.3: 0.9, 0.4: 0.9, 0.5: 0.89, 0.6: 0.88, 0.7: 0.8, 0.8: 0.7},
            [0.5, 0.7, 0.6],
            0.5,
            True,
        ),
    ],
)
def test_auto_bisection(monkeypatch, ratios, accuracy, tried, chosen, within):
    fake = _FakeSearch(monkeypatch, accuracy)
    cfg = techniques.validate_config(
        "channel-prune", {"ratio": "auto", "search_ratios": ratios[::-1], "max_accuracy_drop": 0.01}
    )
    assert cfg.search_ratios == ratios  # sorted
    model, stats = cp.auto_ratio(_small_cnn(), Path("unused"), cfg)
    assert fake.tried == tried
    assert stats["ratio"] == stats["search"]["chosen_ratio"] == chosen
    assert stats["search"]["within_bound"] is within
    assert [t["ratio"] for t in stats["search"]["trials"]] == tried
    assert [t["accuracy"] for t in stats["search"]["trials"]] == [accuracy[r] for r in tried]
    assert len(tried) <= stats["search"]["max_fine_tunes"] == math.ceil(math.log2(len(ratios) + 1))
    assert model.count_params() == stats["params_after"]
    assert stats["search"]["baseline_accuracy"] == 0.9 and stats["search_seconds"] >= 0
