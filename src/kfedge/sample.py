"""The embedded default: a small MobileNet-style classifier trained on the built-in digits.

Depthwise-separable blocks with batch norm and ReLU6 (the building blocks of MobileNetV1/V2),
built with tf_keras so every tfmot technique applies. Trains in well under two minutes on
two cores to >= 95 % eval accuracy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from kfedge import compat
from kfedge.data import load_split, read_info
from kfedge.models import epoch_progress, save_keras

#: Per-sample input of the sample baseline.
SAMPLE_INPUT_SHAPE = (32, 32, 1)


def build_mobilenet_tiny(
    input_shape: tuple[int, ...] = SAMPLE_INPUT_SHAPE,
    num_classes: int = 10,
    widths: tuple[int, ...] = (32, 64, 64, 128),
    seed: int = 0,
) -> Any:
    """Build an untrained MobileNet-style tf_keras classifier.

    Args:
        input_shape: (H, W, C).
        num_classes: Output classes (softmax).
        widths: Pointwise widths of the depthwise-separable blocks; every other block strides 2.
        seed: Initialiser seed.

    Returns:
        An uncompiled ``tf_keras.Model``.
    """
    keras = compat.keras()
    compat.tf().random.set_seed(seed)
    layers = keras.layers
    bn = {"momentum": 0.9}  # low momentum: sound statistics after few steps on little data
    inp = keras.Input(input_shape, name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.BatchNormalization(name="stem_bn", **bn)(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    for i, w in enumerate(widths):
        stride = 2 if i % 2 == 1 else 1
        x = layers.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw"
        )(x)
        x = layers.BatchNormalization(name=f"b{i}_dw_bn", **bn)(x)
        x = layers.ReLU(6.0, name=f"b{i}_dw_relu")(x)
        x = layers.Conv2D(w, 1, use_bias=False, name=f"b{i}_pw")(x)
        x = layers.BatchNormalization(name=f"b{i}_pw_bn", **bn)(x)
        x = layers.ReLU(6.0, name=f"b{i}_pw_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="mobilenet_tiny")


def train_sample_baseline(
    dataset_dir: str | Path,
    out_path: str | Path,
    epochs: int = 30,
    seed: int = 0,
    verbose: int = 0,
) -> dict[str, Any]:
    """Train the sample baseline on a split dataset and save it as ``.keras``.

    Args:
        dataset_dir: A split dataset (see :func:`kfedge.data.prepare_dataset`).
        out_path: Destination ``.keras`` file (written atomically).
        epochs: Maximum epochs (early stopping on the calibration split).
        seed: Seed for initialisation and shuffling.
        verbose: Keras verbosity.

    Returns:
        ``{"path", "eval_accuracy", "params", "seconds", "epochs"}``.
    """
    tf = compat.tf()
    keras = compat.keras()
    keras.utils.set_random_seed(seed)
    info = read_info(dataset_dir)
    x_tr, y_tr = load_split(dataset_dir, "train")
    x_val, y_val = load_split(dataset_dir, "calibration")
    x_ev, y_ev = load_split(dataset_dir, "eval")
    model = build_mobilenet_tiny(tuple(info.input_shape), info.num_classes, seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    stop = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=6, restore_best_weights=True, mode="max"
    )
    lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3)
    hist = model.fit(
        x_tr,
        y_tr,
        batch_size=32,
        epochs=epochs,
        validation_data=(x_val, y_val),
        callbacks=[stop, lr, epoch_progress("sample baseline")],
        verbose=verbose,
        shuffle=True,
    )
    seconds = time.perf_counter() - t0
    probs = model.predict(x_ev, batch_size=256, verbose=0)
    acc = float(np.mean(np.argmax(probs, axis=1) == y_ev))
    save_keras(model, out_path)
    del tf
    return {
        "path": str(out_path),
        "eval_accuracy": acc,
        "params": int(model.count_params()),
        "seconds": round(seconds, 1),
        "epochs": len(hist.history["loss"]),
    }
