"""KFP component ``bundle``: a loop's collected artifacts as ONE artifact."""

from kfp.dsl import Artifact, Input, Output

from kfedge.components import component


@component
def bundle(items: Input[list[Artifact]], bundle: Output[Artifact]):
    """Copy a ``dsl.Collected`` list into one directory, each item under its name.

    A KFP backend resolves one artifact per input name when an input enters a loop's DAG, so
    a collected list crosses into another loop only as one bundle.

    Args:
        items: The collected artifacts (candidates, or per-target reports).
        bundle: The directory: candidates under their names, reports as <target>.json,
            index.json listing them.
    """
    from kfedge.fleet import bundle_into

    bundle.metadata["items"] = ",".join(bundle_into(list(items), bundle))
