"""Target profiles say what a pod needs to reach the device (kfedge.targets.devices)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kfedge.errors import ConfigError
from kfedge.targets import list_targets, load_target, target_yaml
from kfedge.targets.devices import DeviceNeeds


def test_shipped_profiles_state_their_device_needs() -> None:
    assert load_target("nvidia-jetson").devices.k8s() == {"runtimeClassName": "nvidia"}
    coral = load_target("coral-edgetpu").devices.k8s()
    # the device-plugin variant by default: admitted under Pod Security baseline (a Kubeflow
    # profile); the privileged hostPath variant is the documented alternative
    assert coral == {
        "resources": {"requests": {"squat.ai/coral": "1"}, "limits": {"squat.ai/coral": "1"}}
    }
    for name in set(list_targets()) - {"nvidia-jetson", "coral-edgetpu"}:
        assert load_target(name).devices.k8s() == {}, name


@pytest.mark.parametrize("name", list_targets())
def test_every_shipped_yaml_documents_its_devices(name: str) -> None:
    """Each profile carries a `devices:` block with a comment above it saying why."""
    text = (Path(__file__).resolve().parents[1] / "src/kfedge/targets" / f"{name}.yaml").read_text()
    lines = text.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("devices:"))
    assert lines[i - 1].startswith("#"), f"{name}.yaml: document the devices block"


def test_device_plugin_resources_and_paths_become_pod_spec() -> None:
    needs = DeviceNeeds(
        runtime_class="nvidia",
        resources={"squat.ai/coral": 1},
        host_paths=[{"path": "/dev/apex_0", "container_path": "/dev/apex_0"}],
        privileged=True,
    )
    spec = needs.k8s()
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["resources"] == {
        "requests": {"squat.ai/coral": "1"},
        "limits": {"squat.ai/coral": "1"},
    }
    assert spec["volumes"] == [{"name": "dev-apex-0", "hostPath": {"path": "/dev/apex_0"}}]
    assert spec["securityContext"] == {"privileged": True}


def _profile(tmp_path: Path, devices: Any) -> Path:
    data = yaml.safe_load(target_yaml("cpu-arm64"))
    data["devices"] = devices
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ({"host_paths": [{"path": "/dev/bus/usb"}]}, "needs privileged: true"),
        ({"privileged": True}, "only allowed to reach host_paths"),
        ({"host_paths": [{"path": "/etc/shadow"}], "privileged": True}, "not a device path"),
        ({"host_paths": [{"path": "/dev/../etc"}], "privileged": True}, "not a device path"),
        ({"runtime_class": "Nvidia Runtime"}, "not a RuntimeClass name"),
        ({"resources": {"coral": 1}}, "not an extended resource name"),
        ({"resources": {"squat.ai/coral": 0}}, "integer >= 1"),
        ({"runtimeClassName": "nvidia"}, "runtimeClassName"),
    ],
)
def test_bad_device_needs_are_refused_naming_the_field(
    tmp_path: Path, devices: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_target(_profile(tmp_path, devices))
    assert "devices" in str(err.value)


def test_device_needs_survive_targets_show_and_reload(tmp_path: Path) -> None:
    for name in ("coral-edgetpu", "nvidia-jetson"):
        path = tmp_path / f"{name}-copy.yaml"
        path.write_text(target_yaml(name))
        assert load_target(path).devices == load_target(name).devices


@pytest.mark.parametrize("name", ["nvidia-jetson", "coral-edgetpu"])
def test_inference_service_gets_the_device_needs(name: str, reference_dir: Path) -> None:
    pytest.importorskip("kserve")
    from fake_apis import crd_validator

    from kfedge.deploy import build_inference_service

    tgt = load_target(name)
    isvc = build_inference_service("digits", "s3://b/k", tgt, model_format=tgt.formats[0])
    predictor = isvc["spec"]["predictor"]
    want = tgt.devices.k8s()
    if "runtimeClassName" in want:
        assert predictor.get("runtimeClassName") == want["runtimeClassName"]
    if "volumes" in want:
        assert predictor.get("volumes") == want["volumes"]
        assert predictor["model"].get("volumeMounts") == want["volumeMounts"]
        sc = predictor["model"]["securityContext"]
        # KServe merges this over the runtime's restricted context: privileged needs
        # allowPrivilegeEscalation (the API server refuses privileged with it false), and
        # the host's device nodes belong to root
        assert sc == {
            "privileged": True,
            "allowPrivilegeEscalation": True,
            "runAsNonRoot": False,
            "runAsUser": 0,
        }
    else:
        assert "securityContext" not in predictor["model"] and "volumes" not in predictor
    errors = list(
        crd_validator(
            reference_dir, "serving.kserve.io_inferenceservices.yaml", "v1beta1"
        ).iter_errors(isvc)
    )
    assert not errors, [e.message for e in errors]


def test_device_plugin_resources_reach_the_predictor(tmp_path: Path) -> None:
    pytest.importorskip("kserve")
    from kfedge.deploy import build_inference_service

    path = _profile(tmp_path, {"resources": {"squat.ai/coral": 1}})
    isvc = build_inference_service("digits", "s3://b/k", load_target(path))
    res = isvc["spec"]["predictor"]["model"]["resources"]
    assert res["requests"]["squat.ai/coral"] == res["limits"]["squat.ai/coral"] == "1"
    assert "securityContext" not in isvc["spec"]["predictor"]["model"]  # no privilege needed
