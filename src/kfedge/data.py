"""Datasets: .npz files (x, y), image-folder trees, and the built-in sample.

A *split dataset* is a directory written by :func:`save_splits`: ``train.npz``,
``calibration.npz``, ``eval.npz`` (each with ``x`` float32 NHWC and ``y`` int64) and
``dataset.json`` (classes, input shape, source). Batches are streamed from the files,
so memory does not grow with the dataset.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kfedge.errors import DataError, NotFoundError
from kfedge.fsutil import write_json_atomic, write_with

SPLITS = ("train", "calibration", "eval")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
SAMPLE_URI = "sample://digits"


@dataclass
class DatasetInfo:
    """What a split dataset holds."""

    classes: list[str]
    input_shape: list[int]
    counts: dict[str, int] = field(default_factory=dict)
    source: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


# -- checks ----------------------------------------------------------------------------------
def check_arrays(
    x: Any,
    y: Any,
    where: str,
    input_shape: tuple[int, ...] | list[int] | None = None,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Check a (x, y) pair and return it as float32 / int64.

    Args:
        x: Samples, batch first.
        y: Integer labels, one per sample.
        where: Where the data came from (used in messages).
        input_shape: Expected per-sample shape, when known (the model's input).
        num_classes: Labels must lie in ``[0, num_classes)`` when given.

    Returns:
        ``(x, y)`` as float32 and int64 arrays.

    Raises:
        DataError: Empty, wrong shape or dtype, NaN, or labels out of range.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.size == 0 or len(x) == 0:
        raise DataError(f"{where}: the dataset is empty (expected at least one sample)")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: x must be numeric (float or integer pixels), got {x.dtype}")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise DataError(f"{where}: y must hold integer class labels, got {y.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{where}: y must be 1-D with one label per sample ({len(x)}), got shape "
            f"{list(y.shape)}"
        )
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DataError(f"{where}: x contains NaN or infinite values")
    if input_shape is not None:
        want = [int(d) for d in input_shape if d is not None]
        if list(x.shape[1:]) != want:
            raise DataError(
                f"{where}: samples have shape {list(x.shape[1:])}, the model expects {want}"
            )
    yi = y.astype(np.int64)
    if yi.min() < 0 or (num_classes is not None and yi.max() >= num_classes):
        hi = "" if num_classes is None else f" and below {num_classes}"
        raise DataError(
            f"{where}: labels must be >= 0{hi} (the model's classes), found range "
            f"[{yi.min()}, {yi.max()}]"
        )
    return x.astype(np.float32, copy=False), yi


# -- npz streaming ---------------------------------------------------------------------------
def _npz_member(zf: zipfile.ZipFile, name: str, where: str) -> tuple[Any, tuple, np.dtype]:
    member = f"{name}.npy"
    if member not in zf.namelist():
        raise DataError(f"{where}: expected arrays 'x' and 'y', found {sorted(zf.namelist())}")
    fh = zf.open(member)
    version = np.lib.format.read_magic(fh)
    reader = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = reader(fh)
    if fortran:
        raise DataError(f"{where}: Fortran-ordered arrays are not supported")
    if dtype.hasobject:
        raise DataError(f"{where}: '{name}' holds Python objects; expected a numeric array")
    return fh, shape, dtype


def npz_shapes(path: str | Path) -> dict[str, tuple[tuple, np.dtype]]:
    """Shapes and dtypes of ``x`` and ``y`` in an .npz without reading the data."""
    where = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            out = {}
            for name in ("x", "y"):
                fh, shape, dtype = _npz_member(zf, name, where)
                fh.close()
                out[name] = (shape, dtype)
            return out
    except zipfile.BadZipFile as exc:
        raise DataError(f"{where} is not an .npz archive ({exc}); expected x and y arrays") from exc


def iter_npz(path: str | Path, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream ``(x, y)`` batches from an .npz (compressed or not) without loading it whole."""
    where = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{where} is not a readable .npz archive ({exc})") from exc
    with zf:
        fx, sx, dx = _npz_member(zf, "x", where)
        fy, sy, dy = _npz_member(zf, "y", where)
        n = sx[0] if sx else 0
        if len(sy) != 1 or sy[0] != n:
            raise DataError(f"{where}: y must be 1-D with {n} labels, got shape {list(sy)}")
        row = int(np.prod(sx[1:], dtype=np.int64))
        for start in range(0, n, batch_size):
            k = min(batch_size, n - start)
            bx = np.frombuffer(fx.read(k * row * dx.itemsize), dtype=dx).reshape(k, *sx[1:])
            by = np.frombuffer(fy.read(k * dy.itemsize), dtype=dy)
            yield bx, by


def load_npz(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``x`` and ``y`` from an .npz (first ``limit`` samples), checked."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"dataset file not found: {p}")
    xs, ys, total = [], [], 0
    for bx, by in iter_npz(p, 512):
        xs.append(bx)
        ys.append(by)
        total += len(bx)
        if limit is not None and total >= limit:
            break
    if not xs:
        raise DataError(f"{p}: the dataset is empty (expected at least one sample)")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return check_arrays(x, y, str(p))


def save_npz(path: str | Path, x: np.ndarray, y: np.ndarray) -> Path:
    """Write ``x``/``y`` to an uncompressed .npz atomically."""
    return write_with(path, lambda fh: np.savez(fh, x=x, y=y))


# -- images ----------------------------------------------------------------------------------
def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an NHWC float batch with numpy (no framework import)."""
    n, h, w, c = x.shape
    th, tw = size
    if (h, w) == (th, tw):
        return x.astype(np.float32, copy=False)
    ys = np.clip((np.arange(th) + 0.5) * h / th - 0.5, 0, h - 1)
    xs = np.clip((np.arange(tw) + 0.5) * w / tw - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
    bot = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
    return (top * (1 - wy) + bot * wy).astype(np.float32)


def _fit_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[-1] == channels:
        return x
    if x.shape[-1] == 1:
        return np.repeat(x, channels, axis=-1)
    if channels == 1:
        return x[..., :3].mean(axis=-1, keepdims=True)
    raise DataError(f"cannot turn {x.shape[-1]}-channel images into {channels} channels")


def load_image_folder(
    root: str | Path, size: tuple[int, int], channels: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load an image-folder tree (one sub-folder per class) scaled to [0, 1].

    Args:
        root: Folder whose sub-folders are class names.
        size: Target (height, width).
        channels: 1 (grey) or 3 (RGB).

    Returns:
        ``(x, y, classes)``.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{root}: expected one sub-folder per class with images, found none")
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if channels == 1 else "RGB").resize(size[::-1])
                    arr = np.asarray(im, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{f}: not a readable image ({exc})") from exc
            xs.append(arr.reshape(*size, channels))
            ys.append(label)
    if not xs:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    return np.stack(xs), np.asarray(ys, dtype=np.int64), classes


# -- the built-in sample ---------------------------------------------------------------------
def sample_digits(
    size: tuple[int, int] = (32, 32), channels: int = 1
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The handwritten digits that ship inside scikit-learn (1797 8x8 images, no download).

    Args:
        size: Target (height, width), bilinear resize.
        channels: 1 or 3 (grey repeated).

    Returns:
        ``(x, y, classes)`` with x float32 in [0, 1], NHWC.
    """
    from kfedge import compat

    digits = compat.require("sklearn.datasets").load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    x = _fit_channels(resize_images(x, size), channels)
    return np.clip(x, 0.0, 1.0), digits.target.astype(np.int64), [str(i) for i in range(10)]


def split_indices(
    y: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> dict[str, np.ndarray]:
    """Deterministic stratified split into train / calibration / eval index arrays."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_train = int(round(fractions[0] * len(idx)))
        n_cal = int(round(fractions[1] * len(idx)))
        parts["train"].append(idx[:n_train])
        parts["calibration"].append(idx[n_train : n_train + n_cal])
        parts["eval"].append(idx[n_train + n_cal :])
    return {s: np.sort(np.concatenate(v)) for s, v in parts.items()}


def save_splits(
    out_dir: str | Path,
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    source: str,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> DatasetInfo:
    """Split deterministically and write a split dataset directory."""
    x, y = check_arrays(x, y, source, num_classes=len(classes))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, idx in split_indices(y, fractions, seed).items():
        if len(idx) == 0:
            raise DataError(f"{source}: the {name} split is empty; the dataset is too small")
        save_npz(out / f"{name}.npz", x[idx], y[idx])
        counts[name] = int(len(idx))
    info = DatasetInfo(classes, list(x.shape[1:]), counts, source)
    write_info(out, info)
    return info


def write_info(dataset_dir: str | Path, info: DatasetInfo) -> Path:
    """Write ``dataset.json`` of a split dataset directory (atomically)."""
    return write_json_atomic(Path(dataset_dir) / "dataset.json", info.__dict__, sort_keys=False)


def read_info(dataset_dir: str | Path) -> DatasetInfo:
    """Read ``dataset.json`` of a split dataset directory."""
    p = Path(dataset_dir) / "dataset.json"
    if not p.is_file():
        raise DataError(
            f"{dataset_dir} is not a split dataset (no dataset.json); expected the output of "
            "provision / save_splits"
        )
    return DatasetInfo(**json.loads(p.read_text()))


def split_path(dataset_dir: str | Path, split: str) -> Path:
    """Path of one split's .npz; a plain .npz path is returned as is (all splits = that file)."""
    p = Path(dataset_dir)
    if p.is_file():
        return p
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'; expected one of {SPLITS}")
    f = p / f"{split}.npz"
    if not f.is_file():
        raise NotFoundError(f"{dataset_dir} has no {split} split ({f.name})")
    return f


def load_split(
    dataset_dir: str | Path, split: str, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split (or the first ``limit`` samples of it)."""
    return load_npz(split_path(dataset_dir, split), limit)


def iter_split(
    dataset_dir: str | Path, split: str, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream one split in float32 / int64 batches."""
    for bx, by in iter_npz(split_path(dataset_dir, split), batch_size):
        yield bx.astype(np.float32, copy=False), by.astype(np.int64, copy=False)


def prepare_dataset(
    source: str | Path,
    out_dir: str | Path,
    input_shape: list[int] | tuple[int, ...] | None = None,
    num_classes: int | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> DatasetInfo:
    """Turn a local source into a checked split dataset.

    Args:
        source: ``sample://digits``, an .npz file, an image-folder tree or an existing split
            dataset directory.
        out_dir: Where to write the split dataset.
        input_shape: The model's per-sample input shape (H, W, C); samples are checked against
            it (image folders and the sample are resized to it).
        num_classes: The model's number of classes; labels are checked against it.
        fractions: train / calibration / eval fractions.
        seed: Split seed.

    Returns:
        The written dataset's info.
    """
    src = str(source)
    size = tuple(input_shape[:2]) if input_shape else (32, 32)
    channels = int(input_shape[2]) if input_shape and len(input_shape) > 2 else 1
    if src in (SAMPLE_URI, "sample", "sample://"):
        x, y, classes = sample_digits(size, channels)  # type: ignore[arg-type]
    else:
        p = Path(src)
        if not p.exists():
            raise NotFoundError(f"dataset not found: {src}")
        if p.is_dir() and (p / "dataset.json").is_file():
            info = read_info(p)
            for s in SPLITS:
                xx, yy = load_split(p, s)
                check_arrays(xx, yy, f"{p}/{s}.npz", input_shape, num_classes)
                save_npz(Path(out_dir) / f"{s}.npz", xx, yy)
            write_info(out_dir, info)
            return info
        if p.is_dir():
            x, y, classes = load_image_folder(p, size, channels)  # type: ignore[arg-type]
        else:
            x, y = load_npz(p)
            n = num_classes or int(y.max()) + 1
            classes = [str(i) for i in range(n)]
    x, y = check_arrays(x, y, src, input_shape, num_classes)
    return save_splits(out_dir, x, y, classes, src, fractions, seed)
