from __future__ import annotations

from pathlib import Path

import numpy as np

from kfedge.data import load_split
from kfedge.runners import load_runner


def test_sample_baseline_meets_the_bar(baseline_model: Path, sample_dataset: Path):
    from kfedge.models import load_keras

    model = load_keras(baseline_model)
    layer_types = {type(layer).__name__ for layer in model.layers}
    assert {"DepthwiseConv2D", "BatchNormalization", "ReLU"} <= layer_types
    assert model.count_params() < 60_000
    x, y = load_split(sample_dataset, "eval")
    acc = float(np.mean(load_runner(baseline_model).predict(x).argmax(1) == y))
    assert acc >= 0.95, f"sample baseline eval accuracy {acc:.3f} < 0.95"
