from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from kfedge import data
from kfedge.errors import DataError, NotFoundError


def test_sample_split_is_deterministic_and_stratified(sample_dataset: Path, tmp_path: Path):
    info = data.read_info(sample_dataset)
    assert info.num_classes == 10 and info.input_shape == [32, 32, 1]
    assert sum(info.counts.values()) == 1797
    again = tmp_path / "again"
    data.prepare_dataset(data.SAMPLE_URI, again, [32, 32, 1], 10)
    for split in data.SPLITS:
        x1, y1 = data.load_split(sample_dataset, split)
        x2, y2 = data.load_split(again, split)
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)
        assert x1.dtype == np.float32 and 0.0 <= x1.min() and x1.max() <= 1.0
        assert set(np.unique(y1)) == set(range(10))  # every class in every split
    _, ytr = data.load_split(sample_dataset, "train")
    _, yev = data.load_split(sample_dataset, "eval")
    assert abs(len(ytr) / 1797 - 0.7) < 0.01 and abs(len(yev) / 1797 - 0.2) < 0.01


def test_sample_resizes_to_model_input(tmp_path: Path):
    info = data.prepare_dataset("sample://digits", tmp_path, [24, 24, 3], 10)
    x, _ = data.load_split(tmp_path, "eval", limit=3)
    assert x.shape == (3, 24, 24, 3) and info.input_shape == [24, 24, 3]


def test_streamed_batches_cover_the_split_without_loading_it(tmp_path: Path):
    n = 20_000
    x = np.random.default_rng(0).random((n, 16, 16, 1), dtype=np.float32)  # 20 MB
    y = np.arange(n) % 10
    path = data.save_npz(tmp_path / "big.npz", x, y)
    del x
    tracemalloc.start()
    seen = 0
    for bx, by in data.iter_npz(path, 256):
        seen += len(bx)
        assert len(bx) == len(by)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == n
    assert peak < 4 * 1024 * 1024, f"streaming peaked at {peak / 1e6:.1f} MB"


def test_npz_and_image_folder_sources(tmp_path: Path):
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(
                root / cls / f"{i}.png"
            )
    (root / "cat" / "notes.txt").write_text("ignored")
    info = data.prepare_dataset(root, tmp_path / "out", [32, 32, 3], 2)
    assert info.classes == ["cat", "dog"] and sum(info.counts.values()) == 20
    x, _ = data.load_split(tmp_path / "out", "train")
    assert x.shape[1:] == (32, 32, 3)

    npz = data.save_npz(
        tmp_path / "d.npz", rng.random((50, 8, 8, 1)).astype(np.float32), np.arange(50) % 5
    )
    info = data.prepare_dataset(npz, tmp_path / "out2", [8, 8, 1], 5)
    assert info.num_classes == 5 and sum(info.counts.values()) == 50


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        (np.zeros((0, 8, 8, 1)), np.zeros((0,)), {}, "the dataset is empty"),
        (
            np.zeros((4, 8, 8, 1)),
            np.zeros((4,)),
            {"input_shape": [32, 32, 1]},
            "samples have shape [8, 8, 1], the model expects [32, 32, 1]",
        ),
        (np.array([["a"]] * 4), np.zeros((4,)), {}, "x must be numeric"),
        (np.full((4, 2), np.nan), np.zeros((4,)), {}, "NaN"),
        (
            np.zeros((4, 2)),
            np.array([0, 1, 2, 10]),
            {"num_classes": 10},
            "labels must be >= 0 and below 10",
        ),
        (np.zeros((4, 2)), np.array([0, -1, 2, 1]), {}, "labels must be >= 0"),
        (np.zeros((4, 2)), np.array([0.5, 1, 2, 1]), {}, "integer class labels"),
        (np.zeros((4, 2)), np.zeros((3,)), {}, "one label per sample"),
    ],
)
def test_bad_data_is_refused_clearly(x, y, kwargs, message):
    with pytest.raises(DataError) as exc:
        data.check_arrays(x, y, "test.npz", **kwargs)
    assert message in str(exc.value)


def test_bad_source_leaves_no_partial_output(tmp_path: Path):
    bad = data.save_npz(tmp_path / "bad.npz", np.zeros((10, 8, 8, 1)), np.arange(10) + 5)
    out = tmp_path / "out"
    with pytest.raises(DataError, match="below 10"):
        data.prepare_dataset(bad, out, [8, 8, 1], 10)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(NotFoundError, match="dataset not found"):
        data.prepare_dataset(tmp_path / "missing.npz", out)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, a=np.zeros(3))
    with pytest.raises(DataError, match="expected arrays 'x' and 'y'"):
        data.load_npz(wrong)
    notzip = tmp_path / "n.npz"
    notzip.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        data.load_npz(notzip)


def test_info_json_roundtrip(sample_dataset: Path):
    meta = json.loads((sample_dataset / "dataset.json").read_text())
    assert meta["source"] == "sample://digits"
    with pytest.raises(DataError, match="not a split dataset"):
        data.read_info(sample_dataset / "nope")


def test_save_npz_and_info_round_trip_atomically(tmp_path: Path) -> None:
    x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    y = np.array([0, 1])
    out = tmp_path / "ds"
    data.save_npz(out / "eval.npz", x, y)
    got_x, got_y = data.load_npz(out / "eval.npz")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    info = data.DatasetInfo(["a", "b"], [4, 4, 1], {"eval": 2}, "test")
    data.write_info(out, info)
    assert data.read_info(out) == info
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "eval.npz"]  # no temp files
