"""Block sparsity (:mod:`kfedge.techniques._blocks`): masks, their layout, the config's rules."""

from __future__ import annotations

import numpy as np
import pytest

from kfedge.techniques import _blocks


def _conv(seed: int = 0, shape: tuple[int, ...] = (3, 3, 16, 8)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 3, 16, 8), (1, 1, 32, 24), (64, 10)])
def test_block_mask_zeroes_whole_input_channel_blocks_to_the_sparsity(shape) -> None:
    k = _conv(shape=shape)
    mask = _blocks.block_mask(k, 0.75, 4)
    assert mask.shape == k.shape and mask.dtype == k.dtype
    blocks = _blocks.block_view(mask, 4)  # (..., cin/4, 4, out)
    # every block is all kept or all zero: no partial block
    per_block = blocks.sum(axis=-2)
    assert set(np.unique(per_block)) <= {0.0, 4.0}
    assert np.mean(per_block == 0) == pytest.approx(0.75, abs=1.0 / per_block.size)
    assert _blocks.block_sparsity(k * mask, 4) == pytest.approx(np.mean(per_block == 0))


def test_block_mask_drops_the_blocks_with_the_smallest_l1_norm() -> None:
    k = np.ones((1, 1, 8, 2), np.float32)
    k[0, 0, 0:4, 0] = 0.01  # block 0 of output 0: smallest
    k[0, 0, 4:8, 1] = 0.02  # block 1 of output 1: next
    mask = _blocks.block_mask(k, 0.5, 4)
    assert mask[0, 0, 0:4, 0].sum() == 0 and mask[0, 0, 4:8, 1].sum() == 0
    assert mask[0, 0, 4:8, 0].sum() == 4 and mask[0, 0, 0:4, 1].sum() == 4


def test_block_zeros_are_contiguous_in_tflites_ohwi_layout() -> None:
    """TFLite stores a convolution as OHWI: a pruned block is 4 consecutive zeros there."""
    k = _conv(1, (3, 3, 16, 8))
    pruned = k * _blocks.block_mask(k, 0.5, 4)
    ohwi = np.transpose(pruned, (3, 0, 1, 2)).ravel()  # what the file holds, in order
    runs = ohwi.reshape(-1, 4)  # consecutive groups of 4 along I
    zero_runs = np.all(runs == 0, axis=1)
    assert np.mean(zero_runs) == pytest.approx(0.5, abs=0.02)
    assert np.sum(ohwi == 0) == 4 * np.sum(zero_runs)  # no zero outside a whole block


def test_block_mask_refuses_what_it_cannot_block() -> None:
    with pytest.raises(ValueError, match="3 input channels do not divide into blocks of 4"):
        _blocks.block_mask(_conv(shape=(3, 3, 3, 8)), 0.5, 4)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        _blocks.block_mask(_conv(), 1.0, 4)


def test_prune_config_takes_one_kind_of_structure() -> None:
    from kfedge.techniques import prune

    assert prune.Config(block_size=(1, 4)).block_size == (1, 4)
    with pytest.raises(ValueError, match=r"block_size must be \[1, n\]"):
        prune.Config(block_size=(4, 1))
    with pytest.raises(ValueError, match="sparsity_m_by_n or block_size, not both"):
        prune.Config(block_size=(1, 4), sparsity_m_by_n=(2, 4))
