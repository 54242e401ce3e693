"""Zero points of ONNX QOperator weights: per-column zero points land on the right axis."""

from __future__ import annotations

import numpy as np
import pytest

from kfedge.errors import ModelFormatError
from kfedge.weights import _zero_point_array


def test_per_column_zero_point_of_a_matmul_weight() -> None:
    w = np.zeros((128, 10), dtype=np.uint8)
    zp = np.arange(10, dtype=np.uint8)
    z = _zero_point_array(w, zp, 0)  # QOperator nodes carry no axis: 0 was assumed
    assert np.asarray(z).shape == (1, 10)
    assert (w - z).shape == (128, 10)


def test_per_channel_conv_zero_point_keeps_its_axis() -> None:
    w = np.zeros((8, 3, 3, 3), dtype=np.int8)
    assert np.asarray(_zero_point_array(w, np.zeros(8, np.int8), 0)).shape == (8, 1, 1, 1)
    assert _zero_point_array(w, np.array([3], np.int8), 0) == 3


def test_zero_points_that_fit_no_axis_are_refused() -> None:
    with pytest.raises(ModelFormatError, match="fit no axis"):
        _zero_point_array(np.zeros((4, 5)), np.zeros(7), 0)
