"""KFP component ``select``: check every candidate against the goals, pick the one to deploy.

``select`` returns a single ``bool`` (deploy) rather than a NamedTuple so that the pipeline can
gate the deploy step with ``dsl.If(select_task.output == True)``: kfp 2.17.3's local runner
resolves only single outputs named ``Output`` inside ``dsl.If`` conditions (a NamedTuple field
is looked up as a parent input, "Could not resolve parent input", and the branch is skipped).
The selected name is in the ``selection`` artifact and in the ``chosen`` model's metadata.
Candidates evaluated in a ``dsl.ParallelFor`` come in as ``dsl.Collected`` lists; the
evaluation and model lists are paired by position. ``timings`` is the ``benchmark`` step's
side-by-side latency of every candidate (timed together on the target node, with intervals),
which ``kfedge.select.select_from_files`` receives for judging latency.
"""

from kfp.dsl import Artifact, Input, Model, Output

from kfedge.components import component


@component
def select(
    evaluations: Input[list[Artifact]],
    models: Input[list[Model]],
    baseline_evaluation: Input[Artifact],
    baseline_model: Input[Model],
    timings: Input[Artifact],
    selection: Output[Artifact],
    chosen: Output[Model],
    goals_json: str = "",
) -> bool:
    """Check every candidate against the goals and pick the one to deploy.

    Args:
        evaluations: Evaluations of the candidates (dsl.Collected from a ParallelFor).
        models: The candidates, in the same order as ``evaluations``.
        baseline_evaluation: Evaluation of the FP32 baseline every candidate is compared with.
        baseline_model: The baseline candidate (deployed when it is the best that meets the
            goals).
        timings: The benchmark step's side-by-side timings of every candidate (their
            latency and its noise).
        selection: JSON: selected, reason, ranking, per-candidate passed / failed_goals.
        chosen: A copy of the selected candidate directory (empty with NOT_SELECTED.txt when
            no candidate meets the goals).
        goals_json: Goals as JSON, e.g. {"max_accuracy_drop": 0.01, "objective": "latency"}
            (accuracy drops are fractions: 0.01 = 1 point).

    Returns:
        Whether a candidate was selected (gate the deploy step with dsl.If on it).
    """
    from kfedge.select import select_from_files

    result = select_from_files(
        [e.path for e in evaluations],
        baseline_evaluation.path,
        goals_json,
        selection.path,
        model_dirs=[m.path for m in models],
        baseline_model_dir=baseline_model.path,
        chosen_dir=chosen.path,
        timings_path=timings.path,
    )
    selection.metadata.update(result["selection_metadata"])
    chosen.metadata.update(result["chosen_metadata"])
    return result["deploy"]
