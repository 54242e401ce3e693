"""kfedge.targets: the shipped profiles validate; user files load; errors name the problem."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import yaml

from kfedge._version import SERVING_IMAGE, __version__
from kfedge.errors import ConfigError, NotFoundError
from kfedge.targets import (
    Target,
    list_targets,
    load_target,
    target_yaml,
    targets_table,
)

REQUIRED = {
    "cpu-amd64",
    "cpu-arm64",
    "nvidia-jetson",
    "nvidia-gpu",
    "coral-edgetpu",
    "intel-cpu-openvino",
}
MINIMAL = """\
description: my board
arch: arm64
formats: [tflite]
quantization: [int8]
"""


def _write(tmp_path: Path, text: str, name: str = "my-board.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_required_profiles_are_shipped() -> None:
    names = list_targets()
    assert REQUIRED <= set(names)
    assert names == sorted(set(names))  # unique, sorted


@pytest.mark.parametrize("name", list_targets())
def test_every_shipped_profile_validates(name: str) -> None:
    t = load_target(name)
    assert t.name == name
    assert t.description and t.notes
    assert t.k8s_node_selector()["kubernetes.io/arch"] == t.arch
    assert t.runtime_image and "{" not in t.runtime_image
    if t.accelerator is not None:
        assert t.accelerator.count >= 1
        assert t.k8s_resources()["limits"][t.accelerator.resource] == str(t.accelerator.count)
    if "onnx" in t.formats:
        assert t.onnx_providers[-1] == "CPUExecutionProvider"  # always a fallback
    # The file starts with a comment block explaining the labels.
    text = resources.files("kfedge.targets").joinpath(f"{name}.yaml").read_text()
    assert text.startswith("# ")
    for key in t.node_selector:
        assert key in text.split("\nname:")[0], f"{name}: label {key} not explained in the header"


def test_shipped_labels_are_the_real_ones() -> None:
    assert load_target("cpu-amd64").node_selector == {"kubernetes.io/arch": "amd64"}
    assert load_target("cpu-arm64").node_selector == {"kubernetes.io/arch": "arm64"}
    gpu = load_target("nvidia-gpu")
    assert gpu.node_selector["nvidia.com/gpu.present"] == "true"
    assert gpu.accelerator is not None and gpu.accelerator.resource == "nvidia.com/gpu"
    jetson = load_target("nvidia-jetson")
    assert jetson.arch == "arm64"
    assert any(k.startswith("nvidia.com/gpu.") for k in jetson.node_selector)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        jetson.k8s_tolerations()
    )
    assert (
        jetson.accelerator is not None and jetson.accelerator.accelerator_type == "nvidia.com/gpu"
    )
    assert jetson.quantization[0] == "fp16"
    assert {"CUDAExecutionProvider", "TensorrtExecutionProvider"} <= set(jetson.onnx_providers)
    coral = load_target("coral-edgetpu")
    assert coral.formats == ["tflite"]
    assert "int8" in coral.quantization and "uint8-io" in coral.quantization
    assert coral.node_selector["feature.node.kubernetes.io/usb-fe_1a6e_089a.present"] == "true"
    vino = load_target("intel-cpu-openvino")
    assert vino.onnx_providers == ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    assert vino.node_selector["feature.node.kubernetes.io/cpu-model.vendor_id"] == "Intel"


def test_runtime_image_derives_from_version(tmp_path: Path) -> None:
    assert load_target("cpu-amd64").runtime_image == SERVING_IMAGE
    t = load_target(
        _write(tmp_path, MINIMAL + 'runtime_image: "{registry}/my-serving:{version}"\n')
    )
    assert t.runtime_image.endswith(f"/my-serving:{__version__}")
    with pytest.raises(ConfigError, match=r"runtime_image.*unknown placeholder"):
        load_target(_write(tmp_path, MINIMAL + 'runtime_image: "{nope}"\n'))


def test_user_file_loads_and_is_named_after_its_stem(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    for arg in (path, str(path)):
        t = load_target(arg)
        assert isinstance(t, Target)
        assert t.name == "my-board"
        assert t.onnx_providers == ["CPUExecutionProvider"]
        assert t.runtime_image == SERVING_IMAGE
        assert t.k8s_node_selector() == {"kubernetes.io/arch": "arm64"}
    named = load_target(_write(tmp_path, "name: lab-pi\n" + MINIMAL, "x.yml"))
    assert named.name == "lab-pi"


def test_yaml_round_trip(tmp_path: Path) -> None:
    for name in list_targets():
        text = target_yaml(name)
        assert text.startswith("#")
        copy = load_target(_write(tmp_path, text, f"copy-{name}.yaml"))
        assert copy == load_target(name)
        assert yaml.safe_load(text)["name"] == name


def test_tolerations_are_kubernetes_shaped(tmp_path: Path) -> None:
    t = load_target(
        _write(
            tmp_path,
            MINIMAL
            + """\
tolerations:
  - {key: dedicated, operator: Equal, value: edge, effect: NoSchedule}
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute,
     toleration_seconds: 300}
  - {operator: Exists}
""",
        )
    )
    assert t.k8s_tolerations() == [
        {"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"},
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {"operator": "Exists"},
    ]
    allowed = {"key", "operator", "value", "effect", "tolerationSeconds"}
    for name in list_targets():
        for tol in load_target(name).k8s_tolerations():
            assert set(tol) <= allowed and tol["operator"] in ("Equal", "Exists")


def test_to_dict_is_plain_data() -> None:
    d = load_target("nvidia-gpu").to_dict()
    assert d["accelerator"] == {"resource": "nvidia.com/gpu", "count": 1, "type": "nvidia.com/gpu"}
    assert isinstance(d["tolerations"][0], dict)
    assert yaml.safe_load(yaml.safe_dump(d)) == d


def test_table_lists_every_target() -> None:
    table = targets_table()
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ARCH", "ACCELERATOR"]
    assert len(lines) == len(list_targets()) + 1
    for name in list_targets():
        assert re.search(rf"^{re.escape(name)}\s", table, re.M)
    assert "nvidia.com/gpu x1" in table


def test_unknown_name_lists_available() -> None:
    with pytest.raises(NotFoundError) as err:
        load_target("raspberry-pi-9")
    msg = str(err.value)
    assert "raspberry-pi-9" in msg
    for name in REQUIRED:
        assert name in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nope.yaml"):
        load_target(tmp_path / "nope.yaml")


BAD_FILES = [
    ("description: x\narch: [unclosed\n", ["not valid YAML", "line"]),
    ("- just\n- a list\n", ["list", "mapping"]),
    ("", ["empty"]),
    (MINIMAL + "colour: red\n", ["colour", "unknown field", "node_selector"]),
    (
        MINIMAL + "tolerations:\n  - {key: k, operator: Equals, value: v}\n",
        ["tolerations[0].operator", "'Equal' or 'Exists'", "Equals"],
    ),
    (
        MINIMAL + "tolerations:\n  - {key: k, operator: Exists, value: v}\n",
        ["tolerations[0]", "Exists takes no value"],
    ),
    (
        MINIMAL + "tolerations:\n  - {key: k, effect: NoRun}\n",
        ["tolerations[0].effect", "NoRun"],
    ),
    (
        MINIMAL + "tolerations:\n  - {key: k, value: v, speed: 3}\n",
        ["tolerations[0].speed", "unknown field", "operator"],
    ),
    (
        MINIMAL + "accelerator: {resource: nvidia.com/gpu, count: 0}\n",
        ["accelerator.count", "greater than or equal to 1"],
    ),
    (MINIMAL + "accelerator: {resource: gpu}\n", ["accelerator.resource", "domain/name"]),
    (MINIMAL.replace("arm64", "riscv64"), ["arch", "riscv64"]),
    (MINIMAL.replace("[tflite]", "[tflite, pytorch]"), ["formats[1]", "pytorch"]),
    (MINIMAL.replace("[int8]", "[int4]"), ["quantization[0]", "int4"]),
    (MINIMAL.replace("[int8]", "[fp32, uint8-io]"), ["quantization", "not 'int8'"]),
    (MINIMAL.replace("[tflite]", "[tflite, tflite]"), ["formats", "more than once"]),
    (MINIMAL.replace("[tflite]", "[]"), ["formats", "at least 1"]),
    (MINIMAL + "node_selector: {kubernetes.io/arch: amd64}\n", ["contradicts arch"]),
    (MINIMAL + "node_selector: {'bad key!': x}\n", ["node_selector", "bad key!"]),
    (MINIMAL + "node_selector: {ok: 'has space'}\n", ["node_selector", "label value"]),
    (MINIMAL + "onnx_providers: [CUDA]\n", ["onnx_providers", "CUDA"]),
    (
        MINIMAL + "onnx_provider_options: {OpenVINOExecutionProvider: {device_type: NPU}}\n",
        ["onnx_provider_options", "OpenVINOExecutionProvider"],
    ),
    (MINIMAL + "serving_resources: {limits: {memory: lots}}\n", ["memory", "quantity"]),
    (MINIMAL + "threads: 0\n", ["threads"]),
    ("name: Bad_Name\n" + MINIMAL, ["name", "Bad_Name"]),
    (MINIMAL.replace("description: my board\n", ""), ["description", "Field required"]),
]


@pytest.mark.parametrize(
    ("text", "needles"),
    BAD_FILES,
    ids=[re.sub(r"\W+", "-", n[0]).strip("-")[:40] for _, n in BAD_FILES],
)
def test_bad_files_name_file_and_field(tmp_path: Path, text: str, needles: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_target(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "\n" not in msg  # one clear line
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_yaml_scalars_are_coerced_for_labels_and_quantities(tmp_path: Path) -> None:
    t = load_target(
        _write(
            tmp_path,
            MINIMAL
            + "node_selector: {example.com/present: true, example.com/gen: 5}\n"
            + "serving_resources: {requests: {cpu: 1, memory: 256Mi}, limits: {cpu: 0.5}}\n",
        )
    )
    assert t.node_selector == {"example.com/present": "true", "example.com/gen": "5"}
    assert t.serving_resources.requests == {"cpu": "1", "memory": "256Mi"}
    assert t.serving_resources.limits == {"cpu": "0.5"}


def test_target_is_immutable() -> None:
    t = load_target("cpu-amd64")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        t.arch = "arm64"  # type: ignore[misc]
    assert t.model_copy(update={"threads": 2}).threads == 2
