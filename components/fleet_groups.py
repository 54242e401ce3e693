"""KFP component ``fleet_groups``: the node groups of a fleet (the per-target outer loop)."""

from kfp.dsl import Artifact, Input

from kfedge.components import component


@component
def fleet_groups(fleet: Input[Artifact]) -> list:
    """The fleet's node groups: targets that may share a node are in one group.

    Args:
        fleet: The plan_fleet step's fleet spec.

    Returns:
        The group names; groups are measured in parallel, a group's targets one at a time.
    """
    from kfedge.fleet import groups_from_file

    return groups_from_file(fleet)
