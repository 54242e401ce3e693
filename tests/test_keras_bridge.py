"""The Keras 3 -> tf_keras bridge: rebuild, verify, refuse (kfedge.keras_bridge / keras3_config).

The Keras 3 models are built here, once per module, small enough to convert in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kfedge import keras_bridge as kb
from kfedge.errors import ModelFormatError
from kfedge.keras3_config import NO_FINE_TUNE


def _random_bn_stats(model) -> None:
    """Non-trivial BatchNormalization weights, so a swapped gamma / mean order would show."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.weights[0].shape[0]
            gamma, beta, mean = rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 1, n)
            layer.set_weights([gamma, beta, mean, rng.uniform(0.5, 2.0, n)])


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (40, 16, 16, 3)).astype("float32")


@pytest.fixture(scope="module")
def seq_cnn(keras3, tmp_path_factory) -> Path:
    """A Keras 3 Sequential CNN (Conv, BN, ReLU, pooling, Dense, Dropout) as .keras and .h5."""
    L = keras3.layers
    model = keras3.Sequential(
        [
            keras3.Input((16, 16, 3)),
            L.Rescaling(2.0, offset=-1.0),
            L.Conv2D(8, 3, padding="same", use_bias=False, name="conv1"),
            L.BatchNormalization(name="bn1"),
            L.ReLU(name="relu1"),
            L.MaxPooling2D(2, name="pool1"),
            L.Conv2D(8, 3, activation="relu", name="conv2"),
            L.AveragePooling2D(2, name="pool2"),
            L.Flatten(name="flat"),
            L.Dense(16, activation="relu", name="fc"),
            L.Dropout(0.3, name="drop"),
            L.Dense(10, activation="softmax", name="probs"),
        ],
        name="seq_cnn",
    )
    _random_bn_stats(model)
    out = tmp_path_factory.mktemp("k3seq") / "seq.keras"
    model.save(out)
    model.save(out.with_suffix(".h5"))
    return out


@pytest.fixture(scope="module")
def residual_cnn(keras3, tmp_path_factory) -> Path:
    """A Keras 3 functional residual CNN: Add, Concatenate, DepthwiseConv2D, a nested block,
    hard_silu and arithmetic on tensors (Keras 3 operations)."""
    L = keras3.layers
    inp = keras3.Input((16, 16, 3), name="image")
    x = L.ZeroPadding2D(1, name="pad")(inp)
    x = L.Conv2D(8, 3, strides=2, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.Activation("relu6", name="stem_relu6")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="dw_bn")(y)
    y = L.LeakyReLU(0.1, name="dw_act")(y)
    y = L.Conv2D(8, 1, name="pw")(y)
    x = L.Add(name="residual")([x, y])
    z = L.SeparableConv2D(4, 3, padding="same", activation="swish", name="sep")(x)
    z = L.Activation("hard_silu", name="hswish")(z)  # becomes Rescaling + ReLU(1) + Multiply
    x = L.Concatenate(name="cat")([x, z])
    x = x * ((2.0 - (x * 0.5 + 1.0)) / 4.0)  # Keras 3 operations, not layers
    block = keras3.Sequential(
        [keras3.Input((8, 8, 12)), L.Conv2D(6, 1, name="block_conv"), L.Softmax(name="block_sm")],
        name="block",
    )
    x = block(x)
    x = L.Multiply(name="gate")([x, x])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(10, activation="softmax", name="probs")(x)
    model = keras3.Model(inp, out, name="residual_cnn")
    _random_bn_stats(model)
    path = tmp_path_factory.mktemp("k3res") / "residual.keras"
    model.save(path)
    return path


def _keras3_outputs(keras3, path: Path, x: np.ndarray) -> np.ndarray:
    return np.asarray(keras3.saving.load_model(path, compile=False)(x, training=False))


def _check_tf_keras_and_prune(path: Path, reference: np.ndarray, x: np.ndarray):
    """The output loads with kfedge's tf_keras loader, matches, and tfmot prunes it.

    Pruning wraps the kernel layers through ``clone_model``, as the prune technique does.
    """
    from kfedge import compat
    from kfedge.models import load_keras

    model = load_keras(path)  # refuses Keras 3 files: this one must be tf_keras
    assert type(model).__module__.startswith("tf_keras")
    got = np.asarray(model(x, training=False))
    assert np.abs(got - reference).max() <= 1e-5 * max(1.0, np.abs(reference).max())
    k2, sp = compat.keras(), compat.tfmot().sparsity.keras

    def wrap(layer):
        kernel = type(layer).__name__ in ("Conv2D", "Dense", "SeparableConv2D")
        return (
            sp.prune_low_magnitude(layer)
            if kernel
            else layer.__class__.from_config(layer.get_config())
        )

    pruned = k2.models.clone_model(model, clone_function=wrap)
    wrapped = [la.layer.name for la in pruned.layers if type(la).__name__ == "PruneLowMagnitude"]
    assert wrapped, "prune_low_magnitude wrapped no layer"
    assert sp.strip_pruning(pruned).count_params() == model.count_params()
    return model, wrapped


def test_sequential_cnn_converts_matches_and_prunes(keras3, seq_cnn, samples, tmp_path):
    assert kb.needs_bridge(seq_cnn)
    out = tmp_path / "seq_tf_keras.keras"
    res = kb.to_tf_keras(seq_cnn, out, samples)
    assert res.samples == 40 and res.max_abs_diff <= res.tolerance
    assert res.source_keras_version.startswith("3") and res.tf_keras_version.startswith("2")
    assert res.layers_mapped == 11 and res.layer_classes["Conv2D"] == 2
    assert json.loads(json.dumps(res.to_dict()))["output"] == str(out)
    assert not kb.needs_bridge(out)
    ref = _keras3_outputs(keras3, seq_cnn, samples)
    model, wrapped = _check_tf_keras_and_prune(out, ref, samples)
    assert type(model).__name__ == "Sequential"
    assert {"conv1", "conv2", "fc", "probs"} <= set(wrapped)
    assert not model.get_layer("conv1").use_bias and model.get_layer("drop").rate == 0.3


def test_residual_functional_converts_matches_and_prunes(keras3, residual_cnn, samples, tmp_path):
    out = tmp_path / "res_tf_keras.keras"
    res = kb.to_tf_keras(residual_cnn, out, samples, max_samples=16)
    assert res.samples == 16 and res.nested_models_inlined == 1
    for cls in ("Add", "Concatenate", "DepthwiseConv2D", "SeparableConv2D", "Activation"):
        assert cls in res.layer_classes, cls
    ops = {"ops.Multiply": 2, "ops.Add": 1, "ops.Subtract": 1, "ops.TrueDivide": 1}
    assert {k: v for k, v in res.layer_classes.items() if k.startswith("ops.")} == ops
    ref = _keras3_outputs(keras3, residual_cnn, samples)
    model, wrapped = _check_tf_keras_and_prune(out, ref, samples)
    assert not any(type(la).__name__ in ("Functional", "Sequential") for la in model.layers)
    assert {"stem", "pw", "sep", "block_conv", "probs"} <= set(wrapped)
    assert model.get_layer("stem_relu6").max_value == 6.0  # Activation("relu6") -> ReLU(6)
    assert model.get_layer("dw_act").alpha == pytest.approx(0.1)  # negative_slope -> alpha
    assert type(model.get_layer("hswish")).__name__ == "Multiply"
    rescale = [la for la in model.layers if type(la).__name__ == "Rescaling"]
    assert len(rescale) == 5  # hard_silu's x / 6 + 0.5 and the four scalar operations
    add = model.get_layer("residual")
    assert {t.node.layer.name for t in add.input} == {"stem_relu6", "pw"}


def test_keras3_h5_converts_to_h5(keras3, seq_cnn, samples, tmp_path):
    h5 = seq_cnn.with_suffix(".h5")
    assert kb.needs_bridge(h5) and kb.check_convertible(h5).startswith("3")
    res = kb.to_tf_keras(h5, tmp_path / "seq.h5", samples[:8])
    assert res.samples == 8 and res.max_abs_diff <= res.tolerance
    _check_tf_keras_and_prune(tmp_path / "seq.h5", _keras3_outputs(keras3, h5, samples), samples)


def test_unsupported_layers_refused_in_one_line_before_loading(keras3, tmp_path):
    L = keras3.layers
    inp = keras3.Input((8,))
    x = L.Lambda(lambda t: t * 2.0, name="lam")(inp)
    x = L.UnitNormalization(name="unit")(x)
    x = L.Dense(4, activation="hard_sigmoid", name="hs")(x)
    x = L.Dense(4, name="ok")(x)
    x = keras3.ops.square(x) * 2.0
    path = tmp_path / "k3model.keras"
    keras3.Model(inp, x).save(path)
    bad = kb.unsupported_layers(path)
    assert bad == [
        "Lambda (layer 'lam')",
        "UnitNormalization (layer 'unit')",
        "activation 'hard_sigmoid' (layer 'hs')",
        "operation Square (layer 'square')",  # while `* 2.0` is rebuilt as Rescaling
    ]
    with pytest.raises(ModelFormatError) as exc:
        kb.check_convertible(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("k3model.keras: layers Keras 3 -> tf_keras cannot rebuild: Lambda")
    assert msg.endswith(NO_FINE_TUNE)
    out = tmp_path / "never.keras"
    with pytest.raises(ModelFormatError, match="cannot rebuild: Lambda"):
        kb.to_tf_keras(path, out, np.zeros((2, 8), "float32"))
    assert not out.exists()


def test_tampered_conversion_fails_verification(seq_cnn, samples, tmp_path, monkeypatch):
    real = kb._copy_weights

    def tampered(pairs):
        real(pairs)
        dense = next(k2 for _, k2 in pairs if k2.name == "fc")
        kernel, bias = dense.get_weights()
        dense.set_weights([kernel + 0.05, bias])

    monkeypatch.setattr(kb, "_copy_weights", tampered)
    out = tmp_path / "tampered.keras"
    with pytest.raises(
        ModelFormatError, match=r"does not reproduce .*max \|diff\| [0-9.e-]+ over 40"
    ):
        kb.to_tf_keras(seq_cnn, out, samples)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_samples_that_do_not_fit_are_refused(seq_cnn, samples, tmp_path):
    from kfedge.errors import DataError

    with pytest.raises(DataError, match="1 inputs but 2 sample arrays"):
        kb.to_tf_keras(seq_cnn, tmp_path / "a.keras", [samples, samples])
    with pytest.raises(DataError, match="do not fit the inputs"):
        kb.to_tf_keras(seq_cnn, tmp_path / "b.keras", samples[:, :8])
    assert not list(tmp_path.iterdir())


def test_savedmodel_and_tf_keras_files_are_refused(tmp_path):
    sm = tmp_path / "exported"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(ModelFormatError) as exc:
        kb.check_convertible(sm)
    assert "\n" not in str(exc.value)
    assert "model.export()" in str(exc.value) and "not layers" in str(exc.value)
    with pytest.raises(ModelFormatError, match="SavedModel"):
        kb.to_tf_keras(sm, tmp_path / "x.keras", None)

    from kfedge import compat

    k2 = compat.keras()
    inp = k2.Input((4,))
    path = tmp_path / "tfk.keras"
    k2.Model(inp, k2.layers.Dense(2)(inp)).save(path)
    assert not kb.needs_bridge(path)
    with pytest.raises(ModelFormatError, match="needs no conversion"):
        kb.check_convertible(path)
    with pytest.raises(ModelFormatError, match=r"\.keras or \.h5, not x\.onnx"):
        kb.to_tf_keras(path, tmp_path / "x.onnx", None)


def test_check_reads_only_the_config_without_tensorflow(residual_cnn):
    code = (
        "import sys; from kfedge.keras3_config import check_convertible, unsupported_layers; "
        "from kfedge.keras3_config import check_fine_tunable; "
        f"v = check_convertible({str(residual_cnn)!r}); assert unsupported_layers("
        f"{str(residual_cnn)!r}) == []; "
        f"assert check_fine_tunable({str(residual_cnn)!r}, ['prune']) == v; "
        "assert 'tensorflow' not in sys.modules, 'TF imported'; print(v)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("3")


def test_fine_tunable_names_the_planned_techniques(keras3, tmp_path):
    """check_fine_tunable: "" for tf_keras (no rebuild), the version for a convertible Keras 3
    model, a one-line refusal naming the layers and the techniques otherwise."""
    from kfedge import compat
    from kfedge.keras3_config import check_fine_tunable

    L = keras3.layers
    inp = keras3.Input((8, 8, 1))
    x = L.GroupNormalization(groups=2, name="gnorm")(L.Conv2D(4, 3, name="conv")(inp))
    path = tmp_path / "k3group.keras"
    keras3.Model(inp, L.Dense(3)(L.Flatten()(x))).save(path)
    with pytest.raises(ModelFormatError) as exc:
        check_fine_tunable(path, ["qat-int8", "prune"])
    assert str(exc.value) == (
        "k3group.keras: layers Keras 3 -> tf_keras cannot rebuild: GroupNormalization (layer "
        f"'gnorm'), so qat-int8, prune cannot fine-tune it; {NO_FINE_TUNE}"
    )
    k2 = compat.keras()
    k2_in = k2.Input((4,))
    tfk = tmp_path / "tfk.keras"
    k2.Model(k2_in, k2.layers.Dense(2)(k2_in)).save(tfk)
    assert check_fine_tunable(tfk, ["prune"]) == ""
