"""Channel pruning surgery (kfedge.techniques._channels): groups, ranking, rebuild.

The central property: channels whose contribution is zero can be removed without changing
the model's outputs. The tests zero the removed channels at their *producers* (kernel slice,
bias, and the following BatchNormalization's beta / moving mean, depthwise bias), so that the
channel is exactly 0 everywhere it flows; they never touch the consumers, whose kernel rows
the surgery must find by itself (through adds, concatenations, flattens).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kfedge import compat
from kfedge.errors import ConfigError, ModelFormatError
from kfedge.techniques import _channels as ch

keras = compat.keras()
L = keras.layers


# -- helpers ---------------------------------------------------------------------------------
def randomize(model: Any, seed: int = 0) -> None:
    """Random weights everywhere, BatchNormalization statistics included (mild scales)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            shape = tuple(w.shape)
            if short in ("gamma", "moving_variance"):
                a = rng.uniform(0.5, 1.5, shape)
            elif short in ("beta", "moving_mean", "bias"):
                a = rng.normal(0, 0.1, shape)
            else:
                fan_in = int(np.prod(shape[:-1])) or 1
                a = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
            new.append(a.astype(np.float32))
        if new:
            layer.set_weights(new)


def _set(layer: Any, short: str, fn: Any) -> None:
    ws = layer.get_weights()
    for i, w in enumerate(layer.weights):
        if w.name.split("/")[-1].split(":")[0] == short:
            ws[i] = fn(ws[i])
    layer.set_weights(ws)


def zero_channels(model: Any, group: ch.ChannelGroup, removed: np.ndarray) -> None:
    """Make channels ``removed`` of ``group`` exactly zero wherever they flow."""

    def zero_last(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[..., idx] = 0
        return a

    for p in group.producers:
        layer = model.get_layer(p)
        kernel = "pointwise_kernel" if "Separable" in type(layer).__name__ else "kernel"
        _set(layer, kernel, lambda a: zero_last(a, removed))
        _set(layer, "bias", lambda a: zero_last(a, removed))
    idx = removed
    for name in group.members:
        layer = model.get_layer(name)
        cls = type(layer).__name__
        if cls == "DepthwiseConv2D":
            dm = layer.depth_multiplier
            idx = (idx[:, None] * dm + np.arange(dm)).ravel()
            _set(layer, "bias", lambda a, i=idx: zero_last(a, i))
        elif cls == "BatchNormalization":
            assert layer.weights[0].shape[-1] == group.size * (len(idx) // len(removed))
            _set(layer, "beta", lambda a, i=idx: zero_last(a, i))
            _set(layer, "moving_mean", lambda a, i=idx: zero_last(a, i))
        elif cls in ("Concatenate", "Flatten"):
            break  # past here the channel is at an offset; nothing with a bias follows


def zero_removed(model: Any, ratio: float, seed: int = 1, **kw: Any) -> dict[str, np.ndarray]:
    """Zero, in every prunable group, as many random channels as ``ratio`` removes."""
    rng = np.random.default_rng(seed)
    removed = {}
    for g in ch.channel_groups(model):
        if not g.prunable:
            continue
        n = g.size - ch.keep_count(g.size, ratio, **kw)
        if n:
            removed[g.id] = np.sort(rng.choice(g.size, n, replace=False))
            zero_channels(model, g, removed[g.id])
    return removed


def inputs(model: Any, n: int = 2, seed: int = 3) -> np.ndarray:
    shape = (n, *tuple(model.input_shape)[1:])
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def outputs(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


def check_surgery(model: Any, ratio: float = 0.5, **kw: Any) -> dict[str, Any]:
    """Ratio 0 is exact; zeroed channels removed at ``ratio`` keep the outputs."""
    x = inputs(model)
    same, stats0 = ch.prune_channels(model, 0.0)
    assert stats0["params_after"] == stats0["params_before"]
    assert np.max(np.abs(outputs(same, x) - outputs(model, x))) < 1e-5
    removed = zero_removed(model, ratio, **kw)
    assert removed, "the model has nothing to prune"
    before = [w.copy() for w in model.get_weights()]
    ref = outputs(model, x)
    new, stats = ch.prune_channels(model, ratio, **kw)
    got = outputs(new, x)
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) < 1e-5 * max(1.0, float(np.max(np.abs(ref))))
    assert stats["params_after"] < stats["params_before"]
    assert stats["macs_after"] < stats["macs_before"]
    for gid, idx in removed.items():
        assert stats["groups"][gid] == {
            "kept": stats["groups"][gid]["total"] - len(idx),
            "total": stats["groups"][gid]["total"],
        }
    # the input model is untouched
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    return stats


# -- models ----------------------------------------------------------------------------------
def plain_cnn(head: str = "flatten") -> Any:
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(16, 3, padding="same")(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(24, 3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.Dropout(0.2)(x)
    x = L.Flatten()(x) if head == "flatten" else L.GlobalAveragePooling2D()(x)
    x = L.Dense(32, activation="relu")(x)
    out = L.Dense(5, activation="softmax")(x)
    model = keras.Model(inp, out)
    randomize(model)
    return model


def conv_bn(x: Any, filters: int, k: int = 3, strides: int = 1, relu: bool = True) -> Any:
    x = L.Conv2D(filters, k, strides=strides, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x) if relu else x


def resnet_blocks() -> Any:
    inp = keras.Input((8, 8, 3))
    x = conv_bn(inp, 16)
    y = conv_bn(conv_bn(x, 16), 16, relu=False)
    x = L.ReLU()(L.Add()([x, y]))  # identity shortcut
    s = conv_bn(x, 32, 1, strides=2, relu=False)
    y = conv_bn(conv_bn(x, 32, strides=2), 32, relu=False)
    x = L.ReLU()(L.Add()([s, y]))  # projection shortcut
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(4)(x))
    randomize(model)
    return model


def inverted_residual(x: Any, expand: int, out: int, strides: int = 1) -> Any:
    inp = x
    x = L.Conv2D(expand, 1, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(out, 1, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    if strides == 1 and inp.shape[-1] == out:
        x = L.Add()([inp, x])
    return x


def mobilenet_blocks() -> Any:
    inp = keras.Input((8, 8, 3))
    x = conv_bn(inp, 16)
    x = inverted_residual(x, 32, 16)
    x = inverted_residual(x, 48, 24, strides=2)
    x = inverted_residual(x, 64, 24)
    x = conv_bn(x, 32, 1)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(3)(x))
    randomize(model)
    return model


def concat_model() -> Any:
    inp = keras.Input((6, 6, 3))
    x = conv_bn(inp, 16)
    a = L.Conv2D(16, 1, activation="relu")(x)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    c = L.Conv2D(24, 3, padding="same")(x)
    x = L.Concatenate()([a, b, c])
    x = L.Flatten()(x)
    x = L.Dense(16, activation="relu")(x)
    model = keras.Model(inp, L.Dense(2)(x))
    randomize(model)
    return model


# -- groups ----------------------------------------------------------------------------------
def test_plain_cnn_groups() -> None:
    model = plain_cnn()
    groups = ch.channel_groups(model)
    assert [g.prunable for g in groups] == [True, True, True, False]
    first, second, hidden, head = groups
    kinds = {g.id: [type(model.get_layer(m)).__name__ for m in g.members] for g in (first, second)}
    assert first.size == 16 and first.consumers == (second.id,)
    assert kinds[first.id] == ["BatchNormalization", "ReLU", "MaxPooling2D"]
    assert second.consumers == (hidden.id,)
    assert kinds[second.id] == ["BatchNormalization", "Activation", "Dropout", "Flatten"]
    assert hidden.size == 32 and hidden.consumers == (head.id,)
    assert first.norms == {first.id: first.members[0]}
    assert "reaches the model output" in head.reason and "softmax" in head.reason


def test_residual_adds_tie_branches() -> None:
    model = resnet_blocks()
    groups = [g for g in ch.channel_groups(model) if len(g.producers) > 1]
    assert len(groups) == 2
    identity, projection = groups
    assert len(identity.producers) == 2 and identity.size == 16
    assert len(projection.producers) == 2 and projection.size == 32
    assert all(g.prunable for g in groups)
    for g in groups:
        assert sum(isinstance(model.get_layer(m), L.Add) for m in g.members) == 1


def test_unprunable_reasons() -> None:
    inp = keras.Input((6, 6, 3))
    x = L.Conv2D(8, 3)(inp)
    r = L.Reshape((16, 8))(x)  # unknown layer: the conv's channels cannot be sliced
    y = L.Conv2D(16, 1)(inp)
    z = L.Add()([L.Conv2D(3, 1)(inp), inp])  # tied to the model input
    lam = L.Lambda(lambda t: t * 2.0)(L.Conv2D(8, 1)(inp))
    out = L.Concatenate()([L.GlobalAveragePooling1D()(r), L.GlobalAveragePooling2D()(y)])
    model = keras.Model(inp, [out, z, lam])
    groups = {g.producers[0]: g for g in ch.channel_groups(model)}
    reasons = {type(model.get_layer(k)).__name__ + k[-2:]: g.reason for k, g in groups.items()}
    assert all(not g.prunable for g in groups.values()), reasons
    text = " | ".join(str(g.reason) for g in groups.values())
    assert "Reshape" in text and "model input" in text and "Lambda" in text
    assert "reaches the model output" in text
    _, stats = ch.prune_channels(model, 0.5)
    assert stats["params_after"] == stats["params_before"]
    assert len(stats["unprunable_groups"]) == 4


# -- surgery ---------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["flatten", "gap"])
def test_plain_cnn_surgery(head: str) -> None:
    model = plain_cnn(head)
    first, second, hidden, out = ch.channel_groups(model)
    stats = check_surgery(model)
    # 16 -> 8; 24 -> 12, rounded up to 16; 32 -> 16; the softmax head is left whole
    assert stats["groups"] == {
        first.id: {"kept": 8, "total": 16},
        second.id: {"kept": 16, "total": 24},
        hidden.id: {"kept": 16, "total": 32},
    }
    assert list(stats["unprunable_groups"]) == [out.id]
    assert stats["channels_before"] == 72 and stats["channels_after"] == 40


def test_flatten_rows_removed_at_every_position() -> None:
    model = plain_cnn("flatten")
    g = ch.channel_groups(model)[1]  # the second conv, flattened into the hidden dense
    keep = np.array([0, 2, 3, 5, 8, 13, 21, 23])
    new, stats = ch.remove_channels(model, {g.id: keep})
    dense = model.get_layer(g.consumers[0]).get_weights()[0]
    want = dense.reshape(-1, g.size, dense.shape[-1])[:, keep, :].reshape(-1, dense.shape[-1])
    np.testing.assert_array_equal(new.get_layer(g.consumers[0]).get_weights()[0], want)
    assert stats["groups"][g.id] == {"kept": 8, "total": 24}


def test_resnet_blocks_surgery() -> None:
    check_surgery(resnet_blocks())


def test_inverted_residual_surgery() -> None:
    model = mobilenet_blocks()
    stats = check_surgery(model)
    tied = [g for g in ch.channel_groups(model) if len(g.producers) == 2]
    assert len(tied) == 2  # conv_bn + the first block's project; the 2 stride-1 24-blocks
    assert all(stats["groups"][g.id]["kept"] == 8 for g in tied if g.size == 16)


def test_concatenate_offsets() -> None:
    model = concat_model()
    check_surgery(model)
    groups = ch.channel_groups(model)

    def producer(g: ch.ChannelGroup) -> Any:
        return model.get_layer(g.producers[0])

    first = next(
        g
        for g in groups
        if any(isinstance(model.get_layer(m), L.DepthwiseConv2D) for m in g.members)
    )
    a = next(g for g in groups if g is not first and producer(g).kernel_size == (1, 1))
    c = next(g for g in groups if isinstance(producer(g), L.Conv2D) and g.size == 24)
    assert first.size == 16 and a.size == 16 and a.consumers == c.consumers
    dense_name = c.consumers[0]
    dw_name = next(m for m in first.members if isinstance(model.get_layer(m), L.DepthwiseConv2D))
    assert set(first.consumers) == {a.id, c.id, dense_name}
    keep = {first.id: np.arange(0, 16, 2), a.id: np.arange(8), c.id: np.arange(16, 24)}
    new, _ = ch.remove_channels(model, keep)
    # concat channels: a (16) | depthwise of x, multiplier 2 (32) | c (24) -> 72 per position
    k0 = keep[first.id]
    cols = np.concatenate(
        [keep[a.id], 16 + (k0[:, None] * 2 + np.arange(2)).ravel(), 48 + keep[c.id]]
    )
    dense = model.get_layer(dense_name).get_weights()[0]
    want = dense.reshape(36, 72, -1)[:, cols, :].reshape(-1, dense.shape[-1])
    np.testing.assert_array_equal(new.get_layer(dense_name).get_weights()[0], want)
    dw = model.get_layer(dw_name).get_weights()
    np.testing.assert_array_equal(new.get_layer(dw_name).get_weights()[0], dw[0][:, :, k0, :])
    np.testing.assert_array_equal(
        new.get_layer(dw_name).get_weights()[1], dw[1][(k0[:, None] * 2 + np.arange(2)).ravel()]
    )


def test_sequential_model() -> None:
    model = keras.Sequential(
        [
            keras.Input((10, 10, 1)),
            L.Conv2D(16, 3, activation="relu"),
            L.BatchNormalization(),
            L.SeparableConv2D(16, 3, activation="relu"),
            L.GlobalMaxPooling2D(),
            L.Dense(16, activation="relu"),
            L.Dense(3),
        ]
    )
    randomize(model)
    check_surgery(model)


def squeeze_excite() -> Any:
    """A Multiply ties the feature map to the excitation's last conv (no Reshape in between)."""
    inp = keras.Input((8, 8, 3))
    x = conv_bn(inp, 32)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(8, 1, activation="relu")(s)
    s = L.Conv2D(32, 1, activation="sigmoid")(s)
    x = L.Multiply()([x, s])
    x = L.Conv2D(16, 3, padding="same")(x)
    return keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(x)))


def separable_and_friends() -> Any:
    """PReLU, SeparableConv2D and DepthwiseConv2D with multipliers, up-sampling, padding."""
    inp = keras.Input((8, 8, 3))
    x = L.PReLU()(L.Conv2D(16, 3, padding="same")(inp))
    x = L.SeparableConv2D(24, 3, padding="same", depth_multiplier=2)(x)
    x = L.ZeroPadding2D()(L.UpSampling2D()(x))
    x = L.BatchNormalization()(L.DepthwiseConv2D(3, depth_multiplier=3)(x))
    x = L.Conv2D(16, 1)(x)
    return keras.Model(inp, L.Dense(3)(L.Flatten()(x)))


def sequence_model() -> Any:
    """Conv1D, and a Dense on a sequence (its last axis is the channels)."""
    inp = keras.Input((20, 4))
    x = L.Conv1D(16, 3, activation="relu")(inp)
    x = L.MaxPooling1D()(L.Dense(24, activation="gelu")(x))
    x = L.Conv1D(16, 3)(x)
    return keras.Model(inp, L.Dense(2)(L.GlobalMaxPooling1D()(x)))


def shared_layer() -> Any:
    """A layer called twice slices its weights once: its inputs' channels are tied."""
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, padding="same")(inp)
    conv = L.Conv2D(16, 3, padding="same", activation="relu")
    y = L.Concatenate()([conv(x), conv(L.ReLU()(x)), x])
    return keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(y)))


@pytest.mark.parametrize(
    ("build", "pruned"),
    [(squeeze_excite, 3), (separable_and_friends, 3), (sequence_model, 3), (shared_layer, 2)],
)
def test_more_layer_kinds_surgery(build: Any, pruned: int) -> None:
    model = build()
    randomize(model)
    stats = check_surgery(model)
    assert len(stats["groups"]) == pruned
    assert len(stats["unprunable_groups"]) == 1  # the output layer


def test_keep_count_rules() -> None:
    assert ch.keep_count(64, 0.5) == 32
    assert ch.keep_count(64, 0.6) == 32  # 26 kept, rounded up to a multiple of 8
    assert ch.keep_count(16, 0.9) == 8  # min_channels
    assert ch.keep_count(6, 0.5) == 6  # smaller than min_channels: all kept
    assert ch.keep_count(100, 0.5, round_to=1) == 50
    assert ch.keep_count(20, 0.5, min_channels=1, round_to=8) == 16


# -- ranking ---------------------------------------------------------------------------------
def test_rank_l1_and_bn_gamma() -> None:
    model = plain_cnn()
    g = ch.channel_groups(model)[0]
    kernel = model.get_layer(g.id).get_weights()[0]
    np.testing.assert_allclose(
        ch.channel_scores(model, g), np.abs(kernel).reshape(-1, 16).sum(0), rtol=1e-6
    )
    gamma = model.get_layer(g.norms[g.id]).get_weights()[0]
    np.testing.assert_array_equal(
        ch.rank_channels(model, g.id, "bn_gamma"), np.argsort(np.abs(gamma), kind="stable")
    )
    hidden = ch.channel_groups(model)[2]  # a dense without BatchNormalization
    with pytest.raises(ConfigError, match="BatchNormalization"):
        ch.rank_channels(model, hidden, "bn_gamma")
    _, stats = ch.prune_channels(model, 0.5, criterion="bn_gamma")
    assert list(stats["criterion_fallback"]) == [hidden.id]
    # a tied group sums its producers' scores
    res = resnet_blocks()
    tied = next(g for g in ch.channel_groups(res) if len(g.producers) == 2)
    parts = [
        np.abs(res.get_layer(p).get_weights()[0]).reshape(-1, tied.size).sum(0)
        for p in tied.producers
    ]
    np.testing.assert_allclose(ch.channel_scores(res, tied), sum(parts), rtol=1e-6)


# -- errors ----------------------------------------------------------------------------------
def test_errors() -> None:
    model = plain_cnn()
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        ch.prune_channels(model, 1.0)
    with pytest.raises(ConfigError, match="criterion"):
        ch.prune_channels(model, 0.5, criterion="l2")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="skip_layers"):
        ch.prune_channels(model, 0.5, skip_layers=["nope"])
    g = ch.channel_groups(model)
    with pytest.raises(ConfigError, match="cannot be pruned"):
        ch.remove_channels(model, {g[-1].id: [0]})
    with pytest.raises(ConfigError, match="distinct indices"):
        ch.remove_channels(model, {g[0].id: [0, 99]})
    with pytest.raises(ConfigError, match="not a group"):
        ch.rank_channels(model, "nope")

    class Sub(keras.Model):
        def call(self, x):  # noqa: ANN001, ANN202
            return x

    with pytest.raises(ModelFormatError, match="functional or sequential"):
        ch.channel_groups(Sub())
    _, stats = ch.prune_channels(model, 0.5, skip_layers=[g[0].id])
    assert g[0].id in stats["unprunable_groups"] and g[0].id not in stats["groups"]


def test_pruned_model_fine_tunes() -> None:
    model = plain_cnn("gap")
    new, _ = ch.prune_channels(model, 0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    new.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    hist = new.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(hist.history["loss"][-1])


# -- keras.applications ----------------------------------------------------------------------
def test_mobilenet_v2_application() -> None:
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(96, 96, 3), alpha=0.35, classes=10
    )
    groups = ch.channel_groups(model)
    assert sum(g.prunable for g in groups) == len(groups) - 1  # all but the classifier
    stats = check_surgery(model)
    assert stats["params_after"] < 0.5 * stats["params_before"]
    assert stats["macs_after"] < 0.5 * stats["macs_before"]


def test_resnet50_application() -> None:
    # logits: a softmax over random deep-net logits would hide (or blow up) differences
    model = keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None
    )
    randomize(model)
    groups = ch.channel_groups(model)
    tied = [g for g in groups if len(g.producers) > 1]
    # one group per stage: its projection shortcut and each block's last conv (3, 4, 6, 3 blocks)
    assert sorted(len(g.producers) for g in tied) == [4, 4, 5, 7]
    assert all(g.prunable for g in tied)
    assert sum(g.prunable for g in groups) == len(groups) - 1  # all but the classifier
    stats = check_surgery(model)
    assert stats["params_after"] < 0.4 * stats["params_before"]
    assert stats["macs_after"] < 0.4 * stats["macs_before"]
