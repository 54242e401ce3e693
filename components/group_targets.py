"""KFP component ``group_targets``: the targets of one node group."""

from kfp.dsl import Artifact, Input

from kfedge.components import component


@component
def group_targets(fleet: Input[Artifact], group: str) -> list:
    """The targets of a node group (the inner loop's items, one at a time).

    Args:
        fleet: The plan_fleet step's fleet spec.
        group: The group (the outer loop's item).

    Returns:
        The group's target names.
    """
    from kfedge.fleet import members_from_file

    return members_from_file(fleet, group)
