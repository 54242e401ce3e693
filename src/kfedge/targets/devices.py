"""What a pod needs on a target node to reach its device, beyond a node selector and a GPU count.

A target profile's ``devices`` block (:class:`DeviceNeeds`) says it:

* ``runtime_class``: the RuntimeClass whose container runtime exposes the device, e.g. ``nvidia``
  for a Jetson on k3s (k3s registers the NVIDIA container runtime as RuntimeClass ``nvidia``;
  nodes whose containerd default runtime is already NVIDIA's need none).
* ``resources``: extended resources a device plugin registers for the device, requested by the
  pod (requests = limits), e.g. ``squat.ai/coral: 1`` from squat/generic-device-plugin
  configured with a device named ``coral``. The profile's ``accelerator`` stays the GPU / NPU
  count KFP's ``set_accelerator_*`` passes.
* ``host_paths`` + ``privileged``: device nodes mounted from the host (``/dev/bus/usb`` for the
  Coral USB Accelerator, ``/dev/apex_0`` for the PCIe / M.2 card) when no device plugin exposes
  them. A container reaches a host device node only when privileged (the device cgroup), so
  the two go together and neither is allowed alone.

:meth:`DeviceNeeds.k8s` turns it into the Pod-spec pieces the InferenceService's predictor and
the evaluate task get.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DeviceNeeds", "HostPath"]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_EXTENDED_RESOURCE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_DEV_PATH = re.compile(r"^/dev(/[A-Za-z0-9._-]+)+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class HostPath(_Strict):
    """A device node (or device directory) mounted from the node.

    Attributes:
        path: Path on the node, under ``/dev`` (``/dev/bus/usb``, ``/dev/apex_0``).
        container_path: Where it appears in the container (default: the same path).
    """

    path: str
    container_path: str | None = None

    @field_validator("path", "container_path")
    @classmethod
    def _under_dev(cls, v: str | None) -> str | None:
        if v is not None and (not _DEV_PATH.match(v) or "/../" in f"{v}/"):
            raise ValueError(f"{v!r} is not a device path under /dev (e.g. /dev/bus/usb)")
        return v

    @property
    def volume_name(self) -> str:
        """A volume name derived from the path (``dev-bus-usb``)."""
        return re.sub(r"[^a-z0-9]+", "-", self.path.lower()).strip("-")[:63].rstrip("-")


class DeviceNeeds(_Strict):
    """What a pod needs to reach the target's device (all optional; empty: nothing).

    Attributes:
        runtime_class: RuntimeClass name (``nvidia``), or None for the node's default runtime.
        resources: Device-plugin extended resources to request, name -> count (>= 1).
        host_paths: Device nodes to mount from the node (needs ``privileged``).
        privileged: Run privileged, only to reach ``host_paths``.
    """

    runtime_class: str | None = None
    resources: dict[str, int] = Field(default_factory=dict)
    host_paths: list[HostPath] = Field(default_factory=list)
    privileged: bool = False

    @field_validator("runtime_class")
    @classmethod
    def _runtime_class(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 253 or not _DNS_SUBDOMAIN.match(v)):
            raise ValueError(f"{v!r} is not a RuntimeClass name (a DNS subdomain, e.g. nvidia)")
        return v

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, int]) -> dict[str, int]:
        for name, count in v.items():
            if not _EXTENDED_RESOURCE.match(name):
                raise ValueError(
                    f"{name!r} is not an extended resource name (domain/name, e.g. squat.ai/coral)"
                )
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name}: count must be an integer >= 1, got {count!r}")
        return v

    @model_validator(mode="after")
    def _privilege_only_for_host_paths(self) -> DeviceNeeds:
        if self.host_paths and not self.privileged:
            raise ValueError(
                "host_paths needs privileged: true (a container reaches a host device node only "
                "when privileged); or use a device plugin's resource instead"
            )
        if self.privileged and not self.host_paths:
            raise ValueError("privileged is only allowed to reach host_paths, and none is given")
        names = [p.volume_name for p in self.host_paths]
        if len(set(names)) != len(names):
            raise ValueError(f"host_paths lists a device more than once: {names}")
        return self

    def k8s(self) -> dict[str, Any]:
        """The Pod-spec pieces for the device, camelCase, empty keys left out.

        Returns:
            ``runtimeClassName`` (pod), ``resources`` (container requests = limits),
            ``volumes`` (pod), ``volumeMounts`` and ``securityContext`` (container).
        """
        out: dict[str, Any] = {}
        if self.runtime_class:
            out["runtimeClassName"] = self.runtime_class
        if self.resources:
            counts = {k: str(v) for k, v in self.resources.items()}
            out["resources"] = {"requests": dict(counts), "limits": dict(counts)}
        if self.host_paths:
            out["volumes"] = [
                {"name": p.volume_name, "hostPath": {"path": p.path}} for p in self.host_paths
            ]
            out["volumeMounts"] = [
                {"name": p.volume_name, "mountPath": p.container_path or p.path}
                for p in self.host_paths
            ]
            out["securityContext"] = {"privileged": True}
        return out
