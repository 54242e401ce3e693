"""KFP component ``place_target``: one fleet target's placement, goals and service name."""

from typing import NamedTuple

from kfp.dsl import Artifact, Input

from kfedge.components import component


@component
def place_target(
    fleet: Input[Artifact],
    target: str,
) -> NamedTuple(
    "Placement",
    [
        ("node_selector", dict),
        ("tolerations", list),
        ("accelerator_type", str),
        ("accelerator_count", str),
        ("goals", str),
        ("baseline_format", str),
        ("service_name", str),
    ],
):
    """One target's placement (for kfp-kubernetes), goals and InferenceService name.

    Args:
        fleet: The plan_fleet step's fleet spec.
        target: The target (the inner loop's item).

    Returns:
        node_selector: The target's node selector.
        tolerations: The target's tolerations.
        accelerator_type: The accelerator resource, "" when none.
        accelerator_count: Accelerators per pod ("0" when none).
        goals: The target's goals (JSON): the fleet's with its overrides.
        baseline_format: Format of the target's FP32 reference.
        service_name: The target's InferenceService name (kfedge-<target>).
    """
    from kfedge.fleet import place_from_file

    return place_from_file(fleet, target)
