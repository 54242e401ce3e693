"""KFP component ``technique_params``: one technique's parameters from the runtime spec."""

from kfp.dsl import Artifact, Input

from kfedge.components import component


@component
def technique_params(
    runtime: Input[Artifact],
    technique: str,
    accelerator_type: str = "",
    accelerator_count: str = "0",
) -> str:
    """Pick one technique's parameters (JSON) out of the provision step's runtime spec.

    Args:
        runtime: The runtime spec written by provision (its ``params`` map).
        technique: The technique of this branch.
        accelerator_type: Not used by this step: passing the provision outputs here makes KFP's
            compiler carry them into the ParallelFor sub-DAG, where the evaluate step requests
            the target's accelerator with them.
        accelerator_count: Likewise, the accelerator count.

    Returns:
        The technique's parameters as JSON ("{}" = the technique's defaults).
    """
    from kfedge.provision import technique_params_from_file

    return technique_params_from_file(runtime, technique)
