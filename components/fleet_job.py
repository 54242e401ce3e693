"""KFP component ``fleet_job``: one optimize job of a fleet (technique and parameters)."""

from typing import NamedTuple

from kfp.dsl import Artifact, Input

from kfedge.components import component


@component
def fleet_job(
    fleet: Input[Artifact],
    job: str,
) -> NamedTuple("FleetJob", [("technique", str), ("params_json", str)]):
    """Read one optimize job out of the fleet spec.

    Args:
        fleet: The plan_fleet step's fleet spec.
        job: The job (the loop item): a technique, or ``technique@target`` when that
            target needs other parameters.

    Returns:
        technique: The technique to run.
        params_json: Its parameters (JSON), the candidate's name included when it differs
            from the technique's own.
    """
    from kfedge.fleet import job_from_file

    return job_from_file(fleet, job)
