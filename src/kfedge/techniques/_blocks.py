"""Block sparsity: zeros in whole blocks of consecutive input-channel weights (e.g. 1x4).

tfmot's ``prune_low_magnitude(block_size=...)`` applies blocks to 2-D weights only; on a
Conv2D kernel it silently prunes weight by weight. Here a block is ``block`` consecutive
weights along a kernel's input-channel axis at one (row, column, output channel) of a Conv2D
kernel (Keras ``HWIO``) or at one output of a Dense kernel (``IO``). Those are the weights
TFLite stores next to each other (``OHWI`` convolutions, ``OI`` fully connected layers), so
a pruned block is a run of ``block`` zero bytes in the INT8 file, which is what gzip and the
runtimes' block-sparse formats exploit; scattered zeros of the same count compress worse.

Pruning is gradual, as tfmot's: at each mask update of a tfmot ``PruningSchedule`` the blocks
with the smallest L1 norm are masked until the schedule's sparsity is reached, and after
every training step the kernels are multiplied by their masks (so a masked weight stays zero
while the rest fine-tune). TensorFlow is imported lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Layers whose kernels block pruning masks (input channels on axis -2).
BLOCK_LAYERS = ("Conv2D", "Dense")


def block_mask(kernel: np.ndarray, sparsity: float, block: int) -> np.ndarray:
    """A 0/1 mask of ``kernel``'s shape that zeroes its smallest blocks.

    Args:
        kernel: A Conv2D (``HWIO``) or Dense (``IO``) kernel; its input channels (axis -2)
            must divide by ``block``.
        sparsity: Fraction of the blocks to zero (rounded down to whole blocks).
        block: Consecutive input-channel weights per block.

    Returns:
        The mask (``kernel.dtype``); ties in block norm are broken by position, so the
        mask is deterministic.

    Raises:
        ValueError: The input channels do not divide by ``block``, or ``sparsity`` is not in
            [0, 1).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    cin = int(kernel.shape[-2])
    if block < 1 or cin % block:
        raise ValueError(f"{cin} input channels do not divide into blocks of {block}")
    blocks = block_view(np.abs(kernel), block).sum(axis=-2)  # (..., cin // block, out)
    n = int(sparsity * blocks.size)
    keep = np.ones(blocks.size, dtype=bool)
    if n:
        order = np.argsort(blocks.ravel(), kind="stable")
        keep[order[:n]] = False
    keep = keep.reshape(blocks.shape)
    mask = np.repeat(keep[..., None, :], block, axis=-2)  # back to (..., cin//b, b, out)
    return mask.reshape(kernel.shape).astype(kernel.dtype)


def block_view(kernel: np.ndarray, block: int) -> np.ndarray:
    """``kernel`` (``...IO``) viewed as ``(..., cin // block, block, out)``."""
    *lead, cin, out = kernel.shape
    return kernel.reshape(*lead, cin // block, block, out)


def block_sparsity(kernel: np.ndarray, block: int) -> float:
    """Fraction of ``kernel``'s blocks that are all zero."""
    zero = np.all(block_view(kernel, block) == 0, axis=-2)
    return float(np.mean(zero))


def prunable(layer: Any, block: int) -> str | None:
    """Why ``layer`` cannot be block-pruned (None: it can)."""
    kind = type(layer).__name__
    if kind not in BLOCK_LAYERS:
        return f"{kind} is not block-pruned (only {', '.join(BLOCK_LAYERS)})"
    cin = int(layer.kernel.shape[-2])
    if cin % block:
        return f"{cin} input channels, not a multiple of the block ({block})"
    return None


def block_pruning(layers: list[Any], schedule: Any, block: int) -> Any:
    """A Keras callback that prunes ``layers``' kernels in blocks on ``schedule``.

    Args:
        layers: Conv2D / Dense layers of the model being fine-tuned (:func:`prunable`).
        schedule: A tfmot ``PruningSchedule``: called with the step, it says whether to
            update the masks and to which sparsity.
        block: Consecutive input-channel weights per block.

    Returns:
        A ``keras.callbacks.Callback`` (its ``masks`` and ``updates`` hold the last masks and
        how many mask updates ran).
    """
    from kfedge import compat

    keras = compat.keras()
    tf = compat.tf()

    class BlockPruning(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.step = 0
            self.updates = 0
            self.masks = {ly.name: np.ones(ly.kernel.shape, np.float32) for ly in layers}

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            update, sparsity = schedule(tf.constant(self.step, tf.int64))
            if bool(update):
                s = float(sparsity)
                for ly in layers:
                    kernel = ly.kernel.numpy()
                    self.masks[ly.name] = block_mask(kernel * self.masks[ly.name], s, block)
                self.updates += 1
                self._apply()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            self._apply()

        def _apply(self) -> None:
            for ly in layers:
                ly.kernel.assign(ly.kernel.numpy() * self.masks[ly.name])

    return BlockPruning()
